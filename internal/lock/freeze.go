package lock

import (
	"errors"
	"fmt"
)

// ErrFrozen is wrapped by every error of a frozen writer: its root decoder,
// port or cxl_acpi root is being torn down or is gone.
var ErrFrozen = errors.New("writer frozen")

// FrozenError is a request refused, or a write stopped, because the writer is
// frozen. errors.Is matches both ErrFrozen and the freeze's reason.
type FrozenError struct {
	Writer string // root decoder name
	Reason error
}

func (e *FrozenError) Error() string {
	return fmt.Sprintf("writer %s frozen: %v", e.Writer, e.Reason)
}

func (e *FrozenError) Unwrap() []error { return []error{ErrFrozen, e.Reason} }

// Freeze stops the writer because its root is going away. Queued and new
// requests fail with a *FrozenError; an op already running goes on (it may
// need to clean up its own state) but every Tx.Write it makes from now on
// fails without touching sysfs. A write already inside the kernel when
// Freeze is called completes. Freezing a frozen writer keeps the first
// reason, the root cause.
func (w *Writer) Freeze(reason error) {
	if reason == nil {
		reason = errors.New("no reason given")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.frozen != nil {
		return
	}
	w.frozen = reason
	close(w.freezeC)
	ferr := w.frozenErrLocked()
	for _, q := range w.queue {
		q.err = ferr
		close(q.ready)
	}
	w.queue = nil
	w.reg.log.Info("writer frozen", "writer", w.name, "reason", reason)
}

// Thaw lets the writer take requests again, after a rescan found its root.
func (w *Writer) Thaw() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.frozen == nil {
		return
	}
	w.frozen = nil
	w.freezeC = make(chan struct{})
	w.reg.log.Info("writer thawed", "writer", w.name)
}

// Frozen reports whether the writer is frozen, and why.
func (w *Writer) Frozen() (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.frozen != nil, w.frozen
}

// frozenErr is the error for a request on a frozen writer, or nil.
func (w *Writer) frozenErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.frozen == nil {
		return nil
	}
	return w.frozenErrLocked()
}

func (w *Writer) frozenErrLocked() error {
	return &FrozenError{Writer: w.name, Reason: w.frozen}
}
