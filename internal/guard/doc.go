// Package guard serializes the writers that bypass the daemon.
//
// The daemon's per-root-decoder writer (internal/lock) only protects the
// writes that go through it. An operator's `echo region3 > delete_region`
// or ndctl's `cxl destroy-region` would still race the daemon and each
// other (docs/design.md guarantee 8). The guard closes that hole with fanotify
// permission events: it marks the race-relevant control files (every root
// decoder's delete_region and create_*_region, the cxl_region driver's
// bind/unbind, cxl_acpi's bind/unbind, cxl_port's unbind) and answers
// another process's open() of one of them only once it holds, on that
// process's behalf, the writer of every root decoder the file can affect.
// It keeps those writers until the process closes the file, so an unaware
// writer is serialized with the daemon's own operations (the same FIFO)
// and with every other unaware writer. An open of delete_region, or of an
// unbind (cxl_region's, cxl_port's, cxl_acpi's), also waits until the
// regions it can tear down have settled (Config.Settled): the kernel's own
// work on a region (auto-assembly, the nd registration after any bind)
// takes no writer, and tearing down a pmem region mid-registration oopses
// whichever store does it.
//
// Opens that already hold the writer pass at once: the daemon's own (its
// writer is what holds the lock), those of a process tree holding the
// root decoder's flock (`cxlregionctl lock DECODER -- CMD`, recognized
// through /proc/locks and the /proc parent chain), and further opens by a
// process tree the guard already holds the writer for. Those /proc files
// are read only for a busy writer: an idle one (turn and flock free) is
// taken at once, since a free flock is held by nobody, the opener's tree
// included.
//
// A hold ends when the process has no descriptor of the file left: the
// close event names the file and the closing process, not the open, so
// the guard counts the opens it let through and asks /proc when that is
// not enough (a descriptor inherited by a child, close events the kernel
// merged). A periodic check ends holds whose file nobody has open (an
// open that failed after it was allowed sends no close) and logs holders
// past Config.HoldWarn with pid and command name. Opens queued longer
// than Config.QueueTimeout are refused with EPERM, never let through
// alongside the holder.
//
// A file the guard cannot mark is one whose opens it does not hold: while
// any is unmarked the guard is not Active (Unmarked names them, and the
// change is logged), and every Update tries them again.
//
// If the daemon exits or crashes, the kernel allows every held open when
// the fanotify descriptor closes, so a dead guard never wedges the host.
// Without CAP_SYS_ADMIN or kernel support New fails with ErrUnsupported
// and the daemon runs unguarded.
//
// Memory in use (docs/kernel.md#system-ram): the state files of the memory
// blocks over each region's range (MemoryBlockTargets, kept current from
// the engine's model) join that region's root decoder writer, so an
// `echo offline` or `echo online` from a script never interleaves with the
// daemon offlining a region's memory before a delete; the dax drivers'
// bind and unbind (daxctl reconfigure-device) join every writer. What
// serialization cannot do: a raw `echo regionN > delete_region` of a
// region whose memory is online is held until the writer is free and the
// regions have settled, and is then let through, because fanotify shows
// the open, not what will be written; the kernel accepts it and the
// memory reads back zeros. Config.RefuseDelete (the daemon's
// --guard-refuse-online-memory, off by default) refuses such opens with
// EPERM while any region of the root decoder has memory online, at the
// price of refusing the other deletes under that root decoder meanwhile.
//
// Known limits: every open of a marked file is held, reads of
// create_*_region included (fanotify does not say whether the open is for
// writing). A descriptor passed to an unrelated process over a unix socket
// is not followed. Openers in a pid namespace the daemon cannot see are
// serialized, but their holds end on the periodic check rather than by
// /proc. Foreign openers that arrive together are queued in the order
// their goroutines reach the writer, not strictly in event order.
package guard
