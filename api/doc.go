// Package api is the contract between cxlregiond and its clients: the D-Bus
// names, object paths, interfaces (the introspection XML in
// io.github.cxlregion1.xml), error names, option keys, property names, the
// JSON shapes cxlregionctl prints, and the CLI's exit codes.
//
// Everything here is shared by the daemon (internal/service) and the client
// (cmd/cxlregionctl), so that a name is spelled in exactly one place. Method
// signatures and property types are written only in the XML: the daemon's
// dispatch and the tests' tables are built from it (Interfaces), and the
// Go constants here are names only, checked against it by this package's
// tests.
package api
