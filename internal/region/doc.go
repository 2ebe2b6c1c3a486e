// Package region is cxlregiond's engine: it keeps a model of the host's CXL
// regions (from sysfs scans and uevents) and performs every change to them
// through the root decoder's single writer (internal/lock).
//
// The guarantees of docs/design.md live here as named pieces:
//
//   - Generation: a region is a name plus a generation; a name the kernel
//     reuses is a new generation, and a request for an older one is NotFound.
//     A new generation shows as a different root decoder, type, directory
//     inode, uuid or HPA range (sameGeneration), or as an add uevent after
//     the reading.
//   - coalesce (delete.go): concurrent deletes of one generation join the one
//     in flight; delete_region is written at most once per generation.
//   - settled (settle.go): no delete into unfinished kernel work (auto-assembly,
//     nd/dax registration after bind).
//   - freeze (freeze.go): no write into a teardown of the root.
//   - Create (create.go): all-or-nothing, rolled back in reverse, journalled
//     (internal/journal) so that a restarted daemon finishes what a crash
//     interrupted (recover.go). Each create and delete makes one journal
//     record durable, before its first kernel write; crashPoint
//     (crashpoint.go) is the closed set of places the crash tests stop it.
//   - memoryGate (memory.go): no teardown of a region whose memory is online
//     as System RAM. Every teardown path (delete, disable, a create's
//     rollback, journal recovery) passes it under the writer before its
//     first write: it refuses (MemoryOnlineError, Busy), or with
//     MemoryOptions.Offline offlines the blocks, putting them back online
//     when one cannot be offlined.
//   - PointOfNoReturn (noreturn.go): a create or delete tells its caller,
//     under the writer, just before the write that cancelling can no longer
//     undo (commit; unbind or delete_region). Cancelled before it, a create
//     rolls back and a delete that no other request joined stops unwritten;
//     the D-Bus Job.Cancel is built on it.
package region
