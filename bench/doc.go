// Package bench holds the project's performance benchmarks. Each one
// measures the variants it compares inside the same run, interleaved
// iteration by iteration so that both see the same machine noise, and
// reports their ratio with testing.B.ReportMetric: a figure that holds on a
// shared 2-core machine where absolute ns/op do not.
//
// They run the daemon's real code (internal/region's engine, internal/lock's
// writers, internal/sysfs) against internal/cxlsim, the model of an
// unpatched kernel. The bus rows serve the engine with internal/service on
// a private dbus-daemon; the process rows (startup, idle, CLI) run the
// commands built from this tree against a generated 4096-region sysfs tree
// on tmpfs. The guard's open-overhead figure lives with the guard
// (internal/guard BenchmarkOpen), the one-uevent row with the engine
// (internal/region BenchmarkUevent). See README.md for the command and
// the figures.
package bench
