package guard

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrUnsupported is wrapped by New's error when this host cannot run the
// guard: no CAP_SYS_ADMIN, or a kernel without fanotify permission events.
// The daemon then runs unguarded and says so.
var ErrUnsupported = errors.New("guard unsupported")

// ErrWriterFrozen is wrapped by a Writers.Acquire error when the root
// decoder's writer is frozen because its root is being torn down. An open
// that targets that root decoder is refused (a delete into a teardown is
// race 2); an open of a driver file that affects every root decoder skips
// the frozen one, so that rebinding cxl_acpi is never blocked by the
// writers of the root it is bringing back.
var ErrWriterFrozen = errors.New("writer frozen")

// unsupported classifies a fanotify setup error: the errnos that mean
// "not on this host" wrap ErrUnsupported with the reason, anything else
// (out of descriptors, say) stays an ordinary error.
func unsupported(op string, err error) error {
	var reason string
	switch {
	case errors.Is(err, unix.EPERM):
		reason = "needs CAP_SYS_ADMIN"
	case errors.Is(err, unix.ENOSYS):
		reason = "kernel built without fanotify"
	case errors.Is(err, unix.EINVAL):
		reason = "kernel without fanotify permission events (CONFIG_FANOTIFY_ACCESS_PERMISSIONS)"
	default:
		return fmt.Errorf("guard: %s: %w", op, err)
	}
	return fmt.Errorf("%w: %s: %s: %w", ErrUnsupported, op, reason, err)
}
