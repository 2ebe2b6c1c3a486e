package region

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// Memory in use: a region whose memory the page allocator uses (dax kmem,
// memory blocks online) is never torn down. On the unpatched kernels the
// unbind and the delete both succeed with such memory online: the blocks
// stay online, the range stays claimed until reboot, and after the delete
// every page on them reads back zeros (docs/kernel.md#system-ram). Every
// teardown path (delete, disable, a create's rollback, journal recovery)
// passes through memoryGate under the root decoder's writer, before its
// first write.

// MemoryOptions say what a teardown does with the region's online memory.
type MemoryOptions struct {
	// Offline offlines the region's online memory blocks first (their
	// pages migrate to other nodes), under the region's writer, instead
	// of refusing. A block that cannot be offlined puts back online every
	// block offlined before it, and the teardown fails.
	Offline bool
	// Progress, when set, is told the fraction of blocks offlined so far.
	Progress func(fraction float64)
}

// MemoryOnlineError is a teardown refused before any write because the
// region's memory is online as System RAM. It wraps ErrBusy.
type MemoryOnlineError struct {
	Op     string // delete, disable, rollback, recover
	Region string
	Bytes  uint64   // online bytes
	Blocks []string // online blocks, by index
	Nodes  []int    // their NUMA nodes
}

func (e *MemoryOnlineError) Error() string {
	nodes := make([]string, len(e.Nodes))
	for i, n := range e.Nodes {
		nodes[i] = strconv.Itoa(n)
	}
	what := "the offline option (cxlregionctl " + e.Op + " --offline " + e.Region + ")"
	if e.Op != "delete" && e.Op != "disable" {
		what = "cxlregionctl delete --offline " + e.Region
	}
	// The operation and region are named by the callers' wrapping.
	return fmt.Sprintf("refused: %s of the region's memory is online as System RAM (%s on NUMA node %s); "+
		"tearing it down now would leave that memory online over an address range nothing decodes (its pages read back zeros) "+
		"and leak the range until reboot. Offline the memory first, or use %s",
		formatBytes(e.Bytes), blockList(e.Blocks), strings.Join(nodes, ", "), what)
}

func (e *MemoryOnlineError) Unwrap() error { return ErrBusy }

// blockList names up to four blocks and counts the rest.
func blockList(blocks []string) string {
	const show = 4
	if len(blocks) <= show {
		return strings.Join(blocks, " ")
	}
	return fmt.Sprintf("%s and %d more blocks", strings.Join(blocks[:show], " "), len(blocks)-show)
}

// formatBytes gives a size in the largest binary unit that divides it.
func formatBytes(n uint64) string {
	for _, u := range []struct {
		unit  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatUint(n>>u.shift, 10) + " " + u.unit
		}
	}
	return strconv.FormatUint(n, 10) + " bytes"
}

// memoryGate runs under the region's root decoder writer before the first
// teardown write of op. It re-reads the region's memory from sysfs; with
// memory online it refuses (MemoryOnlineError), or, with opts.Offline,
// offlines it and checks again. On return with nil no block of the region
// is online.
func (e *Engine) memoryGate(ctx context.Context, tx *lock.Tx, op string, reg sysfs.Region, opts MemoryOptions) error {
	mem, err := e.fs.ReadRegionMemory(reg)
	if err != nil {
		return fmt.Errorf("read the region's memory: %w", err)
	}
	online := mem.OnlineBlocks()
	if len(online) == 0 {
		return nil
	}
	if !opts.Offline {
		return onlineError(op, reg.Name, mem)
	}
	if err := e.offlineBlocks(ctx, tx, op, reg.Name, online, opts.Progress); err != nil {
		return err
	}
	// Nothing may online them again while the writer is held (the guard
	// holds opens of memoryN/state), but a block kmem added meanwhile, or
	// a writer the guard does not see, would: check.
	mem, err = e.fs.ReadRegionMemory(reg)
	if err != nil {
		return fmt.Errorf("read the region's memory: %w", err)
	}
	if len(mem.OnlineBlocks()) > 0 {
		return onlineError(op, reg.Name, mem)
	}
	return nil
}

// RootMemoryOnline re-reads the memory of every region of a root decoder
// and returns a MemoryOnlineError for the first whose memory is online,
// nil when none is. The guard asks it before letting another process open
// the root decoder's delete_region (--guard-refuse-online-memory).
func (e *Engine) RootMemoryOnline(rootDecoder string) error {
	e.mu.Lock()
	var regs []sysfs.Region
	for _, r := range e.regions {
		if r.reg.RootDecoder == rootDecoder {
			regs = append(regs, r.reg)
		}
	}
	e.mu.Unlock()
	for _, reg := range regs {
		mem, err := e.fs.ReadRegionMemory(reg)
		if err != nil {
			return fmt.Errorf("read %s's memory: %w", reg.Name, err)
		}
		if len(mem.OnlineBlocks()) > 0 {
			return onlineError("delete", reg.Name, mem)
		}
	}
	return nil
}

func onlineError(op, region string, mem sysfs.RegionMemory) *MemoryOnlineError {
	me := &MemoryOnlineError{Op: op, Region: region, Bytes: mem.OnlineBytes(), Nodes: mem.Nodes()}
	for _, b := range mem.OnlineBlocks() {
		me.Blocks = append(me.Blocks, b.Name)
	}
	return me
}

// offlineBlocks offlines blocks in order. Offlining migrates every page of
// a block and can take seconds to minutes; ctx ending interrupts the write
// in progress (EINTR). On any failure the blocks already offlined are put
// back online in the zone they were in, newest first, so the region is
// left as it was.
func (e *Engine) offlineBlocks(ctx context.Context, tx *lock.Tx, op, region string, blocks []sysfs.MemoryBlock, progress func(float64)) error {
	var done []sysfs.MemoryBlock
	for i, b := range blocks {
		attr, err := sysfs.MemoryBlockStatePath(b.Name)
		if err != nil {
			return errors.Join(err, e.restoreBlocks(tx, done))
		}
		if err := ctx.Err(); err != nil {
			return errors.Join(fmt.Errorf("offline %s: %w", b.Name, ctxErr(ctx)), e.restoreBlocks(tx, done))
		}
		e.log.Info("offlining memory block", "op", op, "region", region, "block", b.Name, "zone", b.ValidZones, "node", b.Node)
		if err := tx.WriteContext(ctx, attr, sysfs.BlockOffline); err != nil {
			return errors.Join(offlineErr(ctx, op, b, err), e.restoreBlocks(tx, done))
		}
		done = append(done, b)
		if progress != nil {
			progress(float64(i+1) / float64(len(blocks)))
		}
	}
	return nil
}

// offlineErr says why a block stayed online: the kernel's errno and what
// it means for offline_pages.
func offlineErr(ctx context.Context, op string, b sysfs.MemoryBlock, err error) error {
	errno := errnoOf(err)
	if errno == unix.EINTR && ctx.Err() != nil {
		return fmt.Errorf("offline %s: interrupted (EINTR) while its pages were migrating: %w", b.Name, ctxErr(ctx))
	}
	ke := kernelErr(op, "offline "+b.Name, err)
	var k *KernelError
	if errors.As(ke, &k) {
		k.Hint = offlineHint(errno, b)
	}
	return ke
}

func offlineHint(errno unix.Errno, b sysfs.MemoryBlock) string {
	zone := b.ValidZones
	switch errno {
	case unix.EBUSY:
		return fmt.Sprintf("the kernel could not isolate the block's range: it holds unmovable pages (zone %s; e.g. page tables of a process bound to node %d); the blocks offlined before it are online again", zone, b.Node)
	case unix.EINTR:
		return "offlining was interrupted by a signal; the blocks offlined before it are online again"
	case unix.ENOMEM:
		return "no memory left to migrate the block's pages to; the blocks offlined before it are online again"
	}
	return "the blocks offlined before it are online again"
}

// restoreBlocks puts blocks back online, newest first, each in the zone it
// was in. It runs whatever the request's context says: leaving them
// offline would strand the region half-offlined.
func (e *Engine) restoreBlocks(tx *lock.Tx, blocks []sysfs.MemoryBlock) error {
	var errs []error
	for _, b := range slices.Backward(blocks) {
		attr, err := sysfs.MemoryBlockStatePath(b.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		value := "online_kernel"
		if b.Movable() {
			value = "online_movable"
		}
		if err := tx.Write(attr, value); err != nil {
			e.log.Error("could not put a memory block back online", "block", b.Name, "err", err)
			errs = append(errs, fmt.Errorf("put %s back online: %w", b.Name, err))
			continue
		}
		e.log.Info("memory block back online", "block", b.Name, "zone", b.ValidZones)
	}
	return errors.Join(errs...)
}
