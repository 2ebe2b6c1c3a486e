// Package guard serializes the writers that bypass the daemon.
//
// The daemon's per-root-decoder writer (internal/lock) only protects the
// writes that go through it. An operator's `echo region3 > delete_region`
// or ndctl's `cxl destroy-region` would still race the daemon and each
// other (DESIGN.md guarantee 8). The guard closes that hole with fanotify
// permission events: it marks the race-relevant control files (every root
// decoder's delete_region and create_*_region, the cxl_region driver's
// bind/unbind, cxl_acpi's bind/unbind, cxl_port's unbind) and answers
// another process's open() of one of them only once it holds, on that
// process's behalf, the writer of every root decoder the file can affect.
// It keeps those writers until the process closes the file, so an unaware
// writer is serialized with the daemon's own operations (the same FIFO)
// and with every other unaware writer.
//
// Opens that already hold the writer pass at once: the daemon's own (its
// writer is what holds the lock), those of a process tree holding the
// root decoder's flock (`cxlregionctl lock DECODER -- CMD`, recognized
// through /proc/locks and the /proc parent chain), and further opens by a
// process tree the guard already holds the writer for.
//
// If the daemon exits or crashes, the kernel allows every held open when
// the fanotify descriptor closes, so a dead guard never wedges the host.
// Without CAP_SYS_ADMIN or kernel support New fails with ErrUnsupported
// and the daemon runs unguarded.
package guard
