package api

// D-Bus error names. Every failure of a method is one of these, with a
// message that names the object and the reason; a client branches on the
// name, never on the message.
const (
	errorPrefix = BusName + ".Error."

	// ErrorNotFound: no such region, root decoder or job, or the region's
	// generation named by the request is gone.
	ErrorNotFound = errorPrefix + "NotFound"
	// ErrorBusy: the kernel's work around the region did not settle in
	// time, or the daemon is shutting down. Retrying later may succeed.
	ErrorBusy = errorPrefix + "Busy"
	// ErrorFrozen: the root decoder's writer is frozen because its root is
	// being torn down or is gone; it thaws when a rescan finds it again.
	ErrorFrozen = errorPrefix + "Frozen"
	// ErrorInvalidArgument: a name, size, option key, option type or value
	// is not acceptable. Nothing was written.
	ErrorInvalidArgument = errorPrefix + "InvalidArgument"
	// ErrorAccessDenied: the caller is not uid 0 and polkit did not
	// authorize io.github.cxlregion1.manage. Nothing was written.
	ErrorAccessDenied = errorPrefix + "AccessDenied"
	// ErrorKernelError: the kernel refused a sysfs write. The message names
	// the step, the attribute and the errno (e.g. "ENXIO").
	ErrorKernelError = errorPrefix + "KernelError"
	// ErrorTimeout: the operation did not finish within its timeout.
	ErrorTimeout = errorPrefix + "Timeout"
	// ErrorCancelled: the job was cancelled (Job.Cancel) before its point
	// of no return and what it wrote was undone, or the daemon shut down
	// while it ran.
	ErrorCancelled = errorPrefix + "Cancelled"
	// ErrorNotCancelable: Job.Cancel on a job past its point of no return
	// (a create that wrote commit, a delete that wrote unbind or
	// delete_region), or already finished. The job goes on.
	ErrorNotCancelable = errorPrefix + "NotCancelable"
	// ErrorJournal: the daemon's intent journal (in its state directory)
	// could not be written or synced: the directory is full, read-only or
	// failing. The daemon writes nothing to the kernel until it can record
	// its intents again. When the operation had failed for another reason
	// first (the kernel refused a write), the message names that too.
	ErrorJournal = errorPrefix + "JournalError"
	// ErrorFailed: anything else (an I/O error reading sysfs).
	ErrorFailed = errorPrefix + "Failed"
)
