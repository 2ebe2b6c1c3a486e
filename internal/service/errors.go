package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/region"
)

func newError(name, format string, args ...any) *dbus.Error {
	return &dbus.Error{Name: name, Body: []any{fmt.Sprintf(format, args...)}}
}

func invalidArg(format string, args ...any) *dbus.Error {
	return newError(api.ErrorInvalidArgument, format, args...)
}

func notFound(format string, args ...any) *dbus.Error {
	return newError(api.ErrorNotFound, format, args...)
}

func accessDenied(format string, args ...any) *dbus.Error {
	return newError(api.ErrorAccessDenied, format, args...)
}

func busy(format string, args ...any) *dbus.Error {
	return newError(api.ErrorBusy, format, args...)
}

func notCancelable(format string, args ...any) *dbus.Error {
	return newError(api.ErrorNotCancelable, format, args...)
}

func failed(format string, args ...any) *dbus.Error {
	return newError(api.ErrorFailed, format, args...)
}

// errorFor maps an engine error to its typed D-Bus error. The message is
// the whole error chain: it names the object, the step, and for a kernel
// error the attribute and the errno. A journal failure comes first: it
// stops every later operation until the state directory is repaired, and
// its message still names the failure it could not record.
func errorFor(err error) *dbus.Error {
	var ke *region.KernelError
	name := api.ErrorFailed
	switch {
	case errors.Is(err, region.ErrJournal):
		name = api.ErrorJournal
	case errors.Is(err, region.ErrFrozen):
		name = api.ErrorFrozen
	case errors.Is(err, region.ErrNotFound):
		name = api.ErrorNotFound
	case errors.Is(err, region.ErrInvalid):
		name = api.ErrorInvalidArgument
	case errors.Is(err, region.ErrBusy):
		name = api.ErrorBusy
	case errors.Is(err, region.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		name = api.ErrorTimeout
	case errors.As(err, &ke):
		name = api.ErrorKernelError
	case errors.Is(err, context.Canceled):
		name = api.ErrorCancelled
	}
	return &dbus.Error{Name: name, Body: []any{err.Error()}}
}

// errorText is "Name: message", as Job.Completed reports a failure.
func errorText(e *dbus.Error) string {
	return e.Name + ": " + e.Error()
}

// truncate keeps a hostile 4 KiB string out of error messages and logs.
func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q… (%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}
