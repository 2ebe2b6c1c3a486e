// Command racer is the guest-side load generator of the QEMU real-kernel
// suite (test/e2e/qemu). It runs inside the VM, against the real kernel's
// CXL sysfs, and is deliberately independent of the daemon's packages: it
// has to show the delete_region race that the daemon exists to prevent, so
// it must not share the daemon's code paths or its bugs.
//
// Subcommands:
//
//	racer race [flags]           create a region to a state, then release N
//	                             deleters at once; repeat; print one RESULT line
//	racer lock FILE -- CMD ARGS  run CMD holding flock(FILE) (busybox has no flock)
//	racer get URL                print an HTTP body (the metrics scraper)
//	racer hold -- CMD ARGS       exec CMD at EOF on stdin (the exec deleters' barrier)
//	racer cleanup                delete leftover regions, free the endpoint's DPA
//	racer pin-node -node N       page tables on node N (a ZONE_NORMAL block's offline gives EBUSY);
//	                             prints READY, holds them until SIGTERM
//
// The WARNING/BUG counts are taken from dmesg by the guest script around a
// run; the racer reports what the writers saw (errno per write, pair outcomes).
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: racer race [flags] | racer lock FILE -- CMD [ARGS...] | racer get URL")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "race":
		err = runRace(os.Args[2:])
	case "lock":
		err = runLock(os.Args[2:])
	case "get":
		err = runGet(os.Args[2:])
	case "hold":
		err = runHold(os.Args[2:])
	case "cleanup":
		err = runCleanup(os.Args[2:])
	case "pin-node":
		err = runPinNode(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "racer:", err)
		os.Exit(1)
	}
}
