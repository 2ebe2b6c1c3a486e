package region

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/journal"
	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// Errors callers branch on. Every error the engine returns wraps one of
// these, or is a *KernelError; only ErrJournal comes with another (the
// operation's own failure that the journal could not record).
var (
	ErrNotFound = errors.New("not found")
	ErrBusy     = errors.New("busy")
	ErrInvalid  = errors.New("invalid argument")
	ErrTimeout  = errors.New("timed out")
	// ErrFrozen is the writer's: its root is being torn down or is gone.
	ErrFrozen = lock.ErrFrozen
	// ErrJournal is the intent journal's: its log in the state directory
	// could not be written or synced (full, read-only, an I/O error). No
	// operation writes to the kernel until it can be; one that failed for
	// another reason and could not record it wraps both.
	ErrJournal = journal.ErrUnwritable
)

// KernelError is a sysfs write the kernel refused.
type KernelError struct {
	Op    string     // create, delete, enable, disable
	Step  string     // the step that failed, e.g. "commit", "target1"
	Attr  string     // the attribute written, relative to the sysfs root
	Errno unix.Errno // the kernel's answer
	Hint  string     // what the errno means here, when known
	Err   error
}

// Error names the step (unless the attribute already does), the attribute
// and the errno. The operation and its object are the caller's prefix
// ("create on decoder0.0: "), so the message says each once.
func (e *KernelError) Error() string {
	msg := fmt.Sprintf("write %s: %s (%s)", e.Attr, e.Errno.Error(), errnoName(e.Errno))
	if e.Step != path.Base(e.Attr) {
		msg = "step " + e.Step + ": " + msg
	}
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

func (e *KernelError) Unwrap() error { return e.Err }

// errnoName gives the symbolic name of an errno (EBUSY), as dmesg and the
// kernel's documentation use them.
func errnoName(errno unix.Errno) string {
	if name := unix.ErrnoName(errno); name != "" {
		return name
	}
	return fmt.Sprintf("errno %d", int(errno))
}

// journalFailed surfaces an error of the intent journal, which an
// operation may not swallow (a lost record could make a restart resume an
// operation its caller was told had failed): an error-level log and a
// JournalFailed event, counted by internal/metrics. The caller also
// returns the error.
func (e *Engine) journalFailed(op, target string, err error) {
	if errors.Is(err, journal.ErrClosed) {
		// Shutting down: the operation is refused, nothing was lost.
		e.log.Warn("operation refused: the journal is closed", "op", op, "target", target)
		return
	}
	e.journalErrors.Add(1)
	e.log.Error("intent journal could not be written", "op", op, "target", target, "err", err)
	e.hub.publish(Event{Kind: JournalFailed, Reason: op, Err: err})
}

// errCrashed is what an operation returns when a test's crash hook stopped
// it dead at a journal point.
var errCrashed = errors.New("engine crashed (test hook)")

// crash reports whether the test hook wants the engine to die at point; once
// it has, the engine writes nothing more, as a killed daemon would.
func (e *Engine) crash(point crashPoint) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.crashed {
		return true
	}
	if e.cfg.crashAt != nil && e.cfg.crashAt(point) {
		e.crashed = true
		return true
	}
	return false
}

// kernelErr turns a failed write into a KernelError that names the step,
// the attribute and the errno, with what the errno means there.
func kernelErr(op, step string, err error) error {
	if errors.Is(err, ErrFrozen) {
		return fmt.Errorf("step %s: %w", step, err)
	}
	ke := &KernelError{Op: op, Step: step, Errno: errnoOf(err), Err: err}
	var we *sysfs.WriteError
	if errors.As(err, &we) {
		ke.Attr = we.Attr
	}
	if ke.Errno == 0 {
		return fmt.Errorf("step %s: %w", step, err)
	}
	ke.Hint = hint(step, ke.Errno)
	return ke
}

// hint explains the errnos whose meaning is known for a step.
func hint(step string, errno unix.Errno) string {
	switch {
	case step == "commit" && errno == unix.ENXIO:
		return "the kernel could not synchronize CPU cache state (cpu_cache_invalidate_memregion); " +
			"Linux 6.12+ refuses to commit under a hypervisor (\"Failed to synchronize CPU cache state\"), " +
			"or the region's targets are incomplete"
	case step == "size" && errno == unix.ERANGE:
		return "the window has no free HPA range of that size"
	case strings.HasSuffix(step, "/dpa_size") && errno == unix.ENOSPC:
		return "the memdev has not enough free capacity of that mode"
	case strings.HasSuffix(step, "/mode") && errno == unix.ENXIO:
		return "the memdev has no capacity of that mode"
	case step == "create_region" && errno == unix.EBUSY:
		return "another creator kept taking the offered region name"
	case strings.HasPrefix(step, "target") && errno == unix.ENXIO:
		return "the endpoint decoder is not reachable at this position of the window, or has no DPA allocation"
	case step == "bind" && errno == unix.ENXIO:
		return "the region is not committed, or its probe failed"
	case step == "uuid" && errno == unix.EBUSY:
		return "another region already has this uuid"
	}
	return ""
}

func errnoOf(err error) unix.Errno {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return 0
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV)
}

// ctxErr maps a request context's end to the engine's errors.
func ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return ctx.Err()
}

// mapCtxErr turns a deadline that expired while queued into ErrTimeout.
func mapCtxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrBusy) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}

// resultOf maps an operation's error to its bounded metrics label.
func resultOf(err error) Result {
	var ke *KernelError
	switch {
	case err == nil:
		return ResultOK
	case errors.Is(err, ErrNotFound):
		return ResultNotFound
	case errors.Is(err, ErrFrozen):
		return ResultFrozen
	case errors.Is(err, ErrBusy):
		return ResultBusy
	case errors.Is(err, ErrInvalid):
		return ResultInvalid
	case errors.Is(err, ErrTimeout):
		return ResultTimeout
	case errors.As(err, &ke):
		return ResultKernelError
	case errors.Is(err, context.Canceled):
		return ResultCanceled
	}
	return ResultError
}
