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

// MPOL_DEFAULT and MPOL_BIND of <linux/mempolicy.h>.
const (
	mpolDefault = 0
	mpolBind    = 2
)

// ptSpan is the address range one page-table page maps on x86-64.
const ptSpan = 2 << 20

// runPinNode puts unmovable pages on a NUMA node, the way the lab made
// offlining a ZONE_NORMAL memory block fail with EBUSY: a thread bound to
// the node (set_mempolicy MPOL_BIND) faults in anonymous memory, so the
// page tables that map it are allocated on that node, and page tables
// cannot be migrated. Only page tables are needed: one page is touched per
// 2 MiB. Nothing else may land on the node, or the block could not be
// offlined after the process is gone: a slab page there outlives it (seen
// on 6.12 when the binding stayed in force: threads the Go runtime
// cloned from the bound thread inherit its policy). So the signal
// handling is set up, the mapping made and its anon_vma created before
// the binding, and the policy is back to the default before READY. A
// block of a CXL node is slow to write under TCG (every access is
// emulated), which is why the data is kept to one page per page table.
// It holds the memory until a signal; exiting frees every page it put on
// the node.
func runPinNode(args []string) error {
	fs := flag.NewFlagSet("pin-node", flag.ContinueOnError)
	node := fs.Int("node", 1, "NUMA node")
	mib := fs.Int("mib", 64, "MiB of address space to map; one page table (and one data page) per 2 MiB lands on the node")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *node < 0 || *node >= 64 || *mib < 4 {
		return fmt.Errorf("pin-node: node 0..63 and at least 4 MiB")
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	size := *mib << 20
	// One extra span so that the mapping can start on a 2 MiB boundary:
	// every span then needs a page table of its own.
	m, err := unix.Mmap(-1, 0, size+ptSpan, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	// Huge pages would map a span without a page table.
	if err := unix.Madvise(m, unix.MADV_NOHUGEPAGE); err != nil {
		return fmt.Errorf("madvise(MADV_NOHUGEPAGE): %w", err)
	}
	skip := (ptSpan - int(uintptr(unsafe.Pointer(&m[0]))%ptSpan)) % ptSpan
	spans := m[skip : skip+size]
	// The first touch, still unbound, makes the anon_vma (slab) on the
	// thread's own node.
	spans[0] = 1
	// The policy is per thread: keep this goroutine on the thread that has it.
	runtime.LockOSThread()
	mask := uint64(1) << uint(*node)
	if _, _, errno := unix.Syscall(unix.SYS_SET_MEMPOLICY, mpolBind, uintptr(unsafe.Pointer(&mask)), 64); errno != 0 {
		return fmt.Errorf("set_mempolicy(MPOL_BIND, node %d): %w", *node, errno)
	}
	n := 0
	for off := ptSpan; off < size; off += ptSpan {
		spans[off] = 1
		n++
	}
	if _, _, errno := unix.Syscall(unix.SYS_SET_MEMPOLICY, mpolDefault, 0, 0); errno != 0 {
		return fmt.Errorf("set_mempolicy(MPOL_DEFAULT): %w", errno)
	}
	fmt.Printf("READY node=%d page_tables=%d\n", *node, n)
	<-sig
	runtime.KeepAlive(m)
	return nil
}
