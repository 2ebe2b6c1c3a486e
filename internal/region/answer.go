package region

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// answerGrace is how long past the caller's deadline answerBy waits for
// the operation's own answer: an operation that ends at the deadline
// (a settle wait answering Busy, a queued request Timeout) gives the
// caller its own, more precise error.
const answerGrace = 250 * time.Millisecond

// answerBy runs op for a caller and answers the caller by the caller's
// deadline (plus answerGrace), whatever op is doing. A sysfs write cannot
// be interrupted, and an operation whose writes have begun must finish or
// roll back under its writer (guarantee 5), so op is not stopped: it goes
// on without the caller, owned by the engine (Run waits for it), and its
// outcome reaches the model and the OperationDone event. The caller gets
// ErrTimeout saying so. A caller without a deadline, or one that cancels
// (Job.Cancel), waits for op's own answer.
func answerBy[T any](e *Engine, ctx context.Context, what string, op func() (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); !ok {
		return op()
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	e.inflight.Add(1)
	go func() {
		defer e.inflight.Done()
		v, err := op()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		r := <-done
		return r.v, r.err
	}
	grace := time.NewTimer(answerGrace)
	defer grace.Stop()
	select {
	case r := <-done:
		return r.v, r.err
	case <-grace.C:
	}
	var zero T
	return zero, fmt.Errorf("%s: %w: the caller's deadline passed while the kernel still had its write; the operation finishes in the daemon and its outcome shows in the region list", what, ErrTimeout)
}
