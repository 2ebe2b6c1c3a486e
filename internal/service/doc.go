// Package service exports cxlregiond's engine on the system bus under
// io.github.cxlregion1 (the contract is in package api).
//
// The Service is a godbus Handler of its own rather than a set of
// conn.Export calls: it owns the object tree, so objects appear and vanish
// with the engine's model without export/unexport races, every argument's
// signature is checked before decoding (a wrong type is InvalidArgument,
// not godbus's generic InvalidArgs), and introspection is served from the
// hand-written XML in package api.
//
// That XML is the one place a signature is written. handlers() names the
// Go function of each method and nothing else; buildDispatch joins them to
// the parsed XML, and New refuses to build a service when a handler has no
// method in the XML or a method of the daemon's interfaces has no handler.
// Replies and exported properties are checked against the XML's types
// (a mismatch is a bug: Failed for a reply, an error log for a property).
//
// Data flows one way: engine events → a full re-read of the engine's model
// → a diff against the exported objects (objects.go) → InterfacesAdded,
// InterfacesRemoved and PropertiesChanged, batched, emitted with no engine
// lock held. Nothing is polled: the one change without an event, a region
// settling by time alone, is re-read by a timer armed for the earliest
// region.RegionInfo.SettleCheckAt; a writer's queue depth
// (RootDecoderChanged) re-reads only the root decoders, and the guard's
// properties are re-read when Config.GuardChanged says so.
//
// Method calls are validated (options.go), authorized (auth.go), then
// handed to the engine, with or without a Job (job.go). A create or
// delete Job may be cancelled (Job.Cancel) until the engine reports its
// point of no return (region.OnPointOfNoReturn): Cancel and that report
// are serialized, so a Cancel either stops the operation or is refused
// with NotCancelable.
package service
