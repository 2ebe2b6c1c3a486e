// Package api is the contract between cxlregiond and its clients: the D-Bus
// names, object paths, interfaces (the introspection XML in
// io.github.cxlregion1.xml), error names, option keys, property names, the
// JSON shapes cxlregionctl prints, and the CLI's exit codes.
//
// Everything here is shared by the daemon (internal/service) and the client
// (cmd/cxlregionctl), so that a name is spelled in exactly one place.
package api
