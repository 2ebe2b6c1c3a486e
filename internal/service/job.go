package service

import (
	"context"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/region"
)

// job is what the service keeps of a Job object besides its properties:
// how to cancel it and whether Cancel may still do so. Guarded by
// Service.mu; Cancel and the engine's point-of-no-return report are
// serialized by it, so a Cancel either stops the operation or is refused.
type job struct {
	cancel     context.CancelFunc
	cancelable bool // Cancel would stop the operation
	cancelled  bool // Cancel was accepted
	finished   bool
}

// startJob runs an operation in the background as a Job object: added
// before the caller gets its path, Completed and its outcome properties
// when done, removed JobGrace later (at once on shutdown). done is called
// when the operation has finished.
func (s *Service) startJob(op operation, uid uint32, done func()) dbus.ObjectPath {
	ctx, cancel := s.opContext(op.opts.timeout)
	j := &job{cancel: cancel, cancelable: op.cancelable}
	s.mu.Lock()
	s.nextJob++
	path := api.JobPath(s.nextJob)
	s.jobs[path] = j
	s.mu.Unlock()
	if op.cancelable {
		ctx = region.OnPointOfNoReturn(ctx, func() { s.pointOfNoReturn(path) })
	}
	objects := append([]dbus.ObjectPath{}, op.objects...)
	s.tree.update(func(tx *treeTx) {
		tx.set(path, object{api.JobInterface: {
			api.PropOperation:    dbus.MakeVariant(op.kind),
			api.PropObjects:      dbus.MakeVariant(objects),
			api.PropProgress:     dbus.MakeVariant(0.0),
			api.PropStartedByUID: dbus.MakeVariant(uid),
			api.PropCancelable:   dbus.MakeVariant(op.cancelable),
			api.PropFinished:     dbus.MakeVariant(false),
			api.PropSuccess:      dbus.MakeVariant(false),
			api.PropErrorName:    dbus.MakeVariant(""),
			api.PropMessage:      dbus.MakeVariant(""),
		}})
	})
	ctx = withProgress(ctx, func(f float64) {
		// Progress short of done; 1 comes with Finished.
		f = min(max(f, 0), 0.99)
		s.tree.update(func(tx *treeTx) {
			tx.patch(path, api.JobInterface, props{api.PropProgress: dbus.MakeVariant(f)})
		})
	})
	go func() {
		defer done()
		result, err := s.run(ctx, op, uid)
		cancel()
		s.mu.Lock()
		j.finished, j.cancelable = true, false
		s.mu.Unlock()
		changes := props{
			api.PropProgress:   dbus.MakeVariant(1.0),
			api.PropFinished:   dbus.MakeVariant(true),
			api.PropSuccess:    dbus.MakeVariant(err == nil),
			api.PropCancelable: dbus.MakeVariant(false),
		}
		message := ""
		if err != nil {
			changes[api.PropErrorName] = dbus.MakeVariant(err.Name)
			changes[api.PropMessage] = dbus.MakeVariant(err.Error())
			message = errorText(err)
		} else if result != "" && result != api.NoJob {
			changes[api.PropObjects] = dbus.MakeVariant([]dbus.ObjectPath{result})
		}
		s.tree.update(func(tx *treeTx) {
			tx.patch(path, api.JobInterface, changes)
			tx.signal(path, api.JobInterface+"."+api.SignalCompleted, err == nil, message)
		})
		// Added before done: shutdown waits for done before graceWG.
		s.graceWG.Add(1)
		go func() {
			defer s.graceWG.Done()
			t := time.NewTimer(s.cfg.JobGrace)
			defer t.Stop()
			select {
			case <-t.C:
			case <-s.opsCtx.Done():
			}
			s.tree.update(func(tx *treeTx) { tx.remove(path) })
			s.mu.Lock()
			delete(s.jobs, path)
			s.mu.Unlock()
		}()
	}()
	return path
}

// pointOfNoReturn is the engine's report that the job's operation is
// about to make a write that cancelling can no longer undo.
func (s *Service) pointOfNoReturn(path dbus.ObjectPath) {
	s.mu.Lock()
	j := s.jobs[path]
	if j == nil || !j.cancelable {
		s.mu.Unlock()
		return
	}
	j.cancelable = false
	s.mu.Unlock()
	s.tree.update(func(tx *treeTx) {
		tx.patch(path, api.JobInterface, props{api.PropCancelable: dbus.MakeVariant(false)})
	})
}

// jobCancel serves Job.Cancel: validated and authorized as every mutating
// method, then the job's context is cancelled, unless the operation has
// passed its point of no return or finished (NotCancelable). A second
// Cancel of a cancelled job succeeds again.
func (s *Service) jobCancel(req *request) ([]any, *dbus.Error) {
	o, err := parseOptions(api.MethodCancel, req.args[0].(map[string]dbus.Variant), api.CancelOptions)
	if err != nil {
		return nil, err
	}
	what := "cancel job " + string(req.path)
	uid, aerr := s.authorize(s.opsCtx, req.sender, !o.noUserInteraction, what)
	if aerr != nil {
		s.log.Info("refused", "operation", "cancel", "what", what, "sender", req.sender, "uid", uid, "reason", aerr.Error())
		return nil, aerr
	}
	s.mu.Lock()
	j := s.jobs[req.path]
	switch {
	case j == nil:
		s.mu.Unlock()
		return nil, notFound("job %s does not exist", req.path)
	case j.finished:
		s.mu.Unlock()
		return nil, notCancelable("%s: the job has finished", what)
	case j.cancelled:
		s.mu.Unlock()
		return []any{}, nil
	case !j.cancelable:
		s.mu.Unlock()
		return nil, notCancelable("%s: the job is past its point of no return and finishes by itself", what)
	}
	j.cancelled, j.cancelable = true, false
	j.cancel()
	s.mu.Unlock()
	s.tree.update(func(tx *treeTx) {
		tx.patch(req.path, api.JobInterface, props{api.PropCancelable: dbus.MakeVariant(false)})
	})
	s.log.Info("job cancelled", "job", req.path, "uid", uid)
	return []any{}, nil
}
