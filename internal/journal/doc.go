// Package journal is the on-disk intent log of cxlregiond's state
// directory: what a create or delete was doing when the daemon died, so
// that a restarted daemon finishes or rolls it back (internal/region's
// recovery), and the generation numbers handed out so far.
//
// # Format (Version 2)
//
// One file, <state>/journal: a 16-byte header (magic "CXLRJNL\0", the
// format version as a little-endian uint32, a CRC32C of the two), then
// records, each framed as length (uint32), CRC32C of the payload (uint32),
// payload (JSON of one record: an operation's whole intent, a done marker
// with its outcome, or a generation reservation). Operations and phases
// are Go types (Op, Phase, Outcome) and are checked when read: an unknown
// one is corruption, not a string compared by text.
//
// A log whose header names another version is refused (*VersionError names
// the file and the version): a newer format is not guessed at. Version 1
// (a JSON file per intent under intents/ and a generation file) is
// converted on Open, strictly; see legacy.go.
//
// Torn tail: only the last append can be cut short by a crash. A bad last
// record (short, bad length running to the end of the file, bad checksum,
// or a zero-filled tail) is dropped and reported (OpenReport.TornBytes). A
// bad record with a good one after it is damage, not a crash: Open refuses
// (*CorruptError with the offset) and leaves the file as it is.
//
// Compaction: Open rewrites the log with only the live intents and the
// generation reservation (renameio: temporary file in the same directory,
// fsync, rename, fsync of the directory); a running daemon does the same
// when the log passes Options.CompactAt (1 MiB, about a thousand
// operations), so the file stays small however long the daemon runs. The same rewrite repairs a log after a failed write or
// fsync (after a failed fsync Linux may have dropped the dirty pages, so
// the file is rewritten from memory, not trusted).
//
// # One synchronous write per operation
//
// An operation makes one record durable before its first kernel write:
// Begin returns only once its intent is on disk. Every later record
// (Advance, Done) is written to the file before the kernel write it
// precedes but not synced; it becomes durable with the next sync of any
// operation. Concurrent Begins share one fsync (group commit: one caller
// syncs, the records appended meanwhile wait for the next sync, which
// covers all of them), so operations on different root decoders do not
// queue behind each other's fsyncs.
//
// Why a later record may wait for a sync:
//
//   - A record written with write(2) is in the page cache: it survives
//     any death of the daemon process (SIGKILL, panic, OOM kill). Only a
//     crash of the whole machine can lose it, and that crash also resets
//     the kernel state the record describes: a region being made or
//     deleted, and the endpoint decoders' DPA allocations, are kernel
//     objects that do not survive a reboot (a region whose decoders the
//     platform committed is assembled again as a new directory, owned by
//     the kernel). Every intent carries the boot id of the kernel it was
//     written under (Intent.BootID); recovery closes an intent of another
//     boot without touching sysfs, so no lost record can make it act on a
//     region of the new boot.
//   - Within one boot, recovery judges every intent against sysfs, never
//     against its phase alone, so a lost phase can only make it do less:
//   - create: a later phase (created … committed) lost only with the
//     machine, see above. Within a boot the records are all there.
//   - delete, "deleting" or "written": recovery writes delete_region only
//     for a region that is still there with the identity the durable
//     intent recorded (root decoder, uuid, HPA base, and the directory's
//     inode number, which a new region reusing the name does not share).
//     A region still there with that identity was not deleted by the
//     earlier write, so deleting it is the first delete that takes
//     effect, not a second one; a region gone or renewed is left alone.
//   - done (Finished): recovery finds the region deleted, or created and
//     complete, or rolled back, and closes the intent; with the machine
//     lost, the boot id closes it.
//   - done (Failed): the caller is told the operation failed, and a
//     restart must not resume it, so this record is synced before Done
//     returns. It is an error path: a delete the kernel refused costs two
//     fsyncs; a successful create or delete costs one.
//
// A journal that cannot write or sync stays failed: every later call first
// tries to rewrite the log from memory; until that succeeds Begin refuses
// (no kernel write without its intent on disk) and every error wraps
// ErrUnwritable. A record that could not be written is not forgotten: it
// is in the in-memory state that the rewrite writes. A restart on a state
// directory that still cannot be written refuses to start (Open's
// compaction fails) rather than recover from a log it cannot close. What
// remains: a daemon killed while its journal is failed, restarted after
// the directory became writable again, finds the last state it could
// write.
package journal
