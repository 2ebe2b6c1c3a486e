package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
)

// callAsJob calls a method with no_wait and follows the Job it returns
// until Completed, so that an interrupt (Ctrl-C, SIGTERM) can cancel the
// operation (Job.Cancel) instead of leaving it to run on unseen. Once the
// job is past its point of no return the daemon refuses the cancel; the
// command then says so and waits for the outcome. It returns what the job
// reports in Objects, or the job's error as an exitError.
func (c *client) callAsJob(ctx context.Context, timeout time.Duration, stderr io.Writer, what string,
	path godbus.ObjectPath, method string, args ...any) ([]godbus.ObjectPath, error) {
	completed := []godbus.MatchOption{
		godbus.WithMatchSender(api.BusName),
		godbus.WithMatchInterface(api.JobInterface),
		godbus.WithMatchMember(api.SignalCompleted),
	}
	if err := c.conn.AddMatchSignalContext(ctx, completed...); err != nil {
		return nil, callError(what, err)
	}
	defer func() { _ = c.conn.RemoveMatchSignal(completed...) }()
	// The daemon leaving the bus ends the wait: no Completed will come.
	ownerLost := []godbus.MatchOption{
		godbus.WithMatchSender("org.freedesktop.DBus"),
		godbus.WithMatchInterface("org.freedesktop.DBus"),
		godbus.WithMatchMember("NameOwnerChanged"),
		godbus.WithMatchArg(0, api.BusName),
	}
	if err := c.conn.AddMatchSignalContext(ctx, ownerLost...); err != nil {
		return nil, callError(what, err)
	}
	defer func() { _ = c.conn.RemoveMatchSignal(ownerLost...) }()
	sigs := make(chan *godbus.Signal, 16)
	c.conn.Signal(sigs)
	defer c.conn.RemoveSignal(sigs)

	opts, ok := args[len(args)-1].(map[string]godbus.Variant)
	if !ok {
		return nil, fmt.Errorf("%s: internal: the last argument is not the options", what)
	}
	opts[api.OptNoWait] = godbus.MakeVariant(true)
	var job godbus.ObjectPath
	if err := c.call(ctx, timeout, what, path, method, args...).Store(&job); err != nil {
		return nil, err
	}
	if !api.IsJobPath(job) {
		return nil, &exitError{code: api.ExitFailure, err: fmt.Errorf("%s: unexpected reply %s", what, job)}
	}

	interrupt, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	wait := defaultCallTimeout
	if timeout > 0 {
		wait = timeout + callMargin
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		select {
		case s := <-sigs:
			if s.Name == "org.freedesktop.DBus.NameOwnerChanged" && len(s.Body) == 3 && s.Body[0] == api.BusName && s.Body[2] == "" {
				return nil, &exitError{code: api.ExitUnreachable, err: fmt.Errorf("%s: cxlregiond left the bus before job %s completed", what, job)}
			}
			if s.Path != job || s.Name != api.JobInterface+"."+api.SignalCompleted || len(s.Body) != 2 {
				continue
			}
			if ok, _ := s.Body[0].(bool); !ok {
				text, _ := s.Body[1].(string)
				name, msg, _ := strings.Cut(text, ": ")
				return nil, callError(what, godbus.Error{Name: name, Body: []any{msg}})
			}
			var objects []godbus.ObjectPath
			v, err := c.conn.Object(api.BusName, job).GetProperty(api.JobInterface + "." + api.PropObjects)
			if err != nil {
				return nil, callError(what, err)
			}
			if err := v.Store(&objects); err != nil {
				return nil, callError(what, err)
			}
			return objects, nil
		case <-interrupt.Done():
			stop()
			interrupt = context.Background() // one cancel; a second signal kills as usual
			err := c.call(ctx, 0, "cancel "+what, job, api.JobInterface+"."+api.MethodCancel, map[string]godbus.Variant{}).Err
			if err != nil {
				fmt.Fprintf(stderr, "%v; waiting for it to finish\n", err)
			} else {
				fmt.Fprintf(stderr, "%s: cancelling; waiting for what was written to be undone\n", what)
			}
		case <-deadline.C:
			return nil, &exitError{code: api.ExitUnreachable, err: fmt.Errorf("%s: job %s did not complete within %s", what, job, wait)}
		}
	}
}
