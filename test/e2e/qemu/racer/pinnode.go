package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mpolBind is MPOL_BIND of <linux/mempolicy.h>.
const mpolBind = 2

// runPinNode puts unmovable pages on a NUMA node, the way the lab made
// offlining a ZONE_NORMAL memory block fail with EBUSY: a thread bound to
// the node (set_mempolicy MPOL_BIND) faults in anonymous memory, so the
// page tables that map it are allocated on that node, and page tables
// cannot be migrated. It prints READY and holds the memory until a signal.
func runPinNode(args []string) error {
	fs := flag.NewFlagSet("pin-node", flag.ContinueOnError)
	node := fs.Int("node", 1, "NUMA node")
	mib := fs.Int("mib", 32, "MiB of anonymous memory to fault in from the bound thread")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *node < 0 || *node >= 64 || *mib <= 0 {
		return fmt.Errorf("pin-node: node 0..63 and a positive size")
	}
	// The policy is per thread: keep this goroutine on the thread that has it.
	runtime.LockOSThread()
	mask := uint64(1) << uint(*node)
	if _, _, errno := unix.Syscall(unix.SYS_SET_MEMPOLICY, mpolBind, uintptr(unsafe.Pointer(&mask)), 64); errno != 0 {
		return fmt.Errorf("set_mempolicy(MPOL_BIND, node %d): %w", *node, errno)
	}
	// Many small mappings: each 2 MiB span needs a page-table page of its own.
	const span = 2 << 20
	var maps [][]byte
	for i := 0; i < *mib/2; i++ {
		m, err := unix.Mmap(-1, 0, span, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return fmt.Errorf("mmap: %w", err)
		}
		for off := 0; off < span; off += os.Getpagesize() {
			m[off] = 1
		}
		maps = append(maps, m)
	}
	fmt.Printf("READY node=%d mib=%d\n", *node, len(maps)*2)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	runtime.KeepAlive(maps)
	return nil
}
