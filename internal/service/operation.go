package service

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/region"
)

// refreshTimeout bounds Manager.Refresh, which takes no options.
const refreshTimeout = time.Minute

// operation is one mutating request whose arguments have been validated.
type operation struct {
	kind    string // create, delete, enable, disable, refresh
	what    string // "delete region3", for messages and logs
	region  string // the region it acts on; "" for create (its result names it) and refresh
	objects []dbus.ObjectPath
	opts    options
	// check runs after authorization, before the operation starts: a
	// precondition read from the exported model (the region exists).
	check func() *dbus.Error
	// run does the work; it returns the object the caller gets back.
	run func(ctx context.Context) (dbus.ObjectPath, error)
	// noResult marks a method that returns nothing (Refresh).
	noResult bool
	// cancelable: run stops and undoes its writes when its context is
	// cancelled before the engine reports the point of no return
	// (region.OnPointOfNoReturn), so its Job may offer Cancel.
	cancelable bool
}

type progressKey struct{}

// withProgress makes f the progress reporter of the operation run in ctx
// (a Job's Progress).
func withProgress(ctx context.Context, f func(float64)) context.Context {
	return context.WithValue(ctx, progressKey{}, f)
}

// progressOf returns the progress reporter of the operation ctx belongs
// to; nil when it runs without a Job.
func progressOf(ctx context.Context) func(float64) {
	f, _ := ctx.Value(progressKey{}).(func(float64))
	return f
}

// execute admits, authorizes and runs an operation, waiting for it or, with
// no_wait, returning a Job at once. Authorization comes after validation
// and before anything else: a refused caller changes nothing.
func (s *Service) execute(req *request, op operation) ([]any, *dbus.Error) {
	done, berr := s.begin(op.what)
	if berr != nil {
		return nil, berr
	}
	uid, aerr := s.authorize(s.opsCtx, req.sender, !op.opts.noUserInteraction, op.what)
	if aerr != nil {
		done()
		s.log.Info("refused", "operation", op.kind, "what", op.what, "region", op.region, "sender", req.sender, "uid", uid,
			"result", "AccessDenied", "reason", aerr.Error())
		return nil, aerr
	}
	if op.check != nil {
		if err := op.check(); err != nil {
			done()
			return nil, err
		}
	}
	if op.opts.noWait {
		return []any{s.startJob(op, uid, done)}, nil
	}
	defer done()
	ctx, cancel := s.opContext(op.opts.timeout)
	defer cancel()
	result, err := s.run(ctx, op, uid)
	if err != nil {
		return nil, err
	}
	if op.noResult {
		return []any{}, nil
	}
	return []any{result}, nil
}

// run runs an operation in ctx (see opContext) and logs its outcome, one
// record with the fields the README documents for the journal: OPERATION,
// REGION, RESULT (ok or the D-Bus error's short name) and, when the kernel
// refused a write, ERRNO (EBUSY).
func (s *Service) run(ctx context.Context, op operation, uid uint32) (dbus.ObjectPath, *dbus.Error) {
	start := time.Now()
	result, err := op.run(ctx)
	s.log.Info("operation "+outcome(err), outcomeAttrs(op, uid, result, err, time.Since(start))...)
	if err != nil {
		return "", errorFor(err)
	}
	return result, nil
}

func outcome(err error) string {
	if err != nil {
		return "failed"
	}
	return "done"
}

// outcomeAttrs are the log fields of an operation's outcome.
func outcomeAttrs(op operation, uid uint32, result dbus.ObjectPath, err error, took time.Duration) []any {
	reg := op.region
	if name, ok := api.RegionName(result); reg == "" && ok {
		reg = name
	}
	attrs := []any{"operation", op.kind, "what", op.what}
	if reg != "" {
		attrs = append(attrs, "region", reg)
	}
	attrs = append(attrs, "uid", uid, "duration", took)
	if err == nil {
		return append(attrs, "result", "ok")
	}
	derr := errorFor(err)
	attrs = append(attrs, "result", derr.Name[strings.LastIndex(derr.Name, ".")+1:], "reason", err)
	var ke *region.KernelError
	if errors.As(err, &ke) && ke.Errno != 0 {
		attrs = append(attrs, "errno", unix.ErrnoName(ke.Errno))
	}
	return attrs
}

// opContext is an operation's context: it outlives the method call (a
// job runs on), and the timeout option bounds it, or else the configured
// default timeout, or else the engine's.
func (s *Service) opContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout == 0 && s.cfg.DefaultTimeout != nil {
		timeout = s.cfg.DefaultTimeout()
	}
	if timeout > 0 {
		return context.WithTimeout(s.opsCtx, timeout)
	}
	return context.WithCancel(s.opsCtx)
}

// regionGeneration reads the generation the exported region object shows.
// what is the operation and its object ("delete region3"), the message's
// one prefix.
func (s *Service) regionGeneration(what, name string) (uint64, *dbus.Error) {
	p, _ := api.RegionPath(name)
	ps, ok := s.tree.get(p, api.RegionInterface)
	if !ok {
		return 0, notFound("%s: no such region", what)
	}
	gen, _ := ps[api.PropGeneration].Value().(uint64)
	return gen, nil
}
