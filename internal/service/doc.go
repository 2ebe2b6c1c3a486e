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
// Data flows one way: engine events → a full re-read of the engine's model
// → a diff against the exported objects (objects.go) → InterfacesAdded,
// InterfacesRemoved and PropertiesChanged, batched, emitted with no engine
// lock held. Method calls are validated (options.go), authorized (auth.go),
// then handed to the engine, with or without a Job (job.go).
package service
