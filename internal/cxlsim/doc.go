// Package cxlsim is a model of an unpatched Linux kernel's CXL region
// sysfs and uevents (v6.1 and v6.12 as Debian ships them), for tests,
// benchmarks and `cxlregiond --simulate`.
//
// It is written from reference/kernel-cxl.md and checked against the
// real-kernel captures in reference/real-kernel: where the two disagree
// the capture wins (see Model choices). It is a model of the kernel, not
// a fake that agrees with the daemon: it imports nothing from the engine.
package cxlsim
