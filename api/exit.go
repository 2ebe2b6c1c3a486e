package api

import "strings"

// Exit codes of cxlregionctl. Scripts branch on them; they never change
// meaning. `cxlregionctl lock` exits with its command's status instead.
const (
	ExitOK = 0
	// ExitFailure: any other failure.
	ExitFailure = 1
	// ExitInvalidArgument: bad command line or a value the daemon refused
	// as invalid (D-Bus InvalidArgument).
	ExitInvalidArgument = 2
	// ExitNotFound: no such region or root decoder.
	ExitNotFound = 3
	// ExitBusy: busy, frozen or timed out: retrying later may succeed.
	ExitBusy = 4
	// ExitAccessDenied: the caller may not do this.
	ExitAccessDenied = 5
	// ExitKernelError: the kernel refused a write.
	ExitKernelError = 6
	// ExitUnreachable: the daemon is not on the bus, or the bus is not
	// reachable.
	ExitUnreachable = 7
)

// ExitCodes documents the exit codes, in order, for --help and the README.
var ExitCodes = []struct {
	Code    int
	Meaning string
}{
	{ExitOK, "success"},
	{ExitFailure, "other failure"},
	{ExitInvalidArgument, "invalid argument or usage"},
	{ExitNotFound, "region or root decoder not found"},
	{ExitBusy, "busy, frozen writer or timeout: retry later"},
	{ExitAccessDenied, "access denied (not root, polkit refused)"},
	{ExitKernelError, "the kernel refused a sysfs write"},
	{ExitUnreachable, "daemon or bus unreachable"},
}

// ExitCodeFor maps a D-Bus error name to the CLI's exit code.
func ExitCodeFor(errorName string) int {
	switch errorName {
	case ErrorNotFound:
		return ExitNotFound
	case ErrorBusy, ErrorFrozen, ErrorTimeout:
		return ExitBusy
	case ErrorInvalidArgument:
		return ExitInvalidArgument
	case ErrorAccessDenied, "org.freedesktop.DBus.Error.AccessDenied":
		return ExitAccessDenied
	case ErrorKernelError:
		return ExitKernelError
	case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
		"org.freedesktop.DBus.Error.NoServer", "org.freedesktop.DBus.Error.Disconnected",
		"org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.TimedOut":
		return ExitUnreachable
	}
	if strings.HasPrefix(errorName, "org.freedesktop.DBus.Error.InvalidArgs") {
		return ExitInvalidArgument
	}
	return ExitFailure
}
