package cxlsim

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/uevent"
)

// System RAM on a ram region: dax kmem, the memory blocks it adds under
// devices/system/memory, the auto-online policy, offline and online
// through a block's state file, and what a teardown with online memory
// does on the unpatched kernels (docs/kernel.md#system-ram): the unbind
// and the delete succeed, kmem prints that the memory "cannot be
// hotremoved until the next reboot", the blocks stay online and keep their
// range claimed (LEAK), and once the region's decoders are reset the
// blocks are online over a range nothing decodes: every page on them reads
// back zeros (CORRUPTION). Both are logged as findings that tests count
// like WARNING and BUG.

const (
	memoryRootPath = "devices/system/memory"
	memBlockSize   = 128 << 20 // x86-64 with less than 64 GiB
)

// memoryState is the memory hotplug side of the machine.
type memoryState struct {
	// AutoOnline is auto_online_blocks: "offline" (6.1's default) or
	// "online" (6.12's), "online_movable", "online_kernel".
	AutoOnline string           `json:"auto_online"`
	Blocks     []*memBlockState `json:"blocks"`
	Leak       int              `json:"leak"`       // LEAK findings printed
	Corruption int              `json:"corruption"` // CORRUPTION findings printed
	// StallOffline makes offlining loop as under memory pressure: a write
	// of "offline" waits until its writer is signalled (EINTR).
	StallOffline bool `json:"stall_offline"`
}

type memBlockState struct {
	Index  uint64 `json:"index"`
	State  string `json:"state"` // online, offline
	Zone   string `json:"zone"`  // Movable, Normal (while online)
	Node   int    `json:"node"`
	Region string `json:"region"` // the region whose dax kmem added it
	Dax    string `json:"dax"`
	// Orphan: kmem let go of the dax device while the block was online;
	// the block stays until reboot.
	Orphan bool `json:"orphan"`
	// Undecoded: the range is no longer decoded; the pages read zeros.
	Undecoded bool `json:"undecoded"`
	// Pinned: unmovable pages on the block (page tables of a process
	// bound to the node): offlining a ZONE_NORMAL block fails EBUSY.
	Pinned bool `json:"pinned"`
}

func (b *memBlockState) name() string { return fmt.Sprintf("memory%d", b.Index) }

func (b *memBlockState) rangeString() string {
	start := b.Index * memBlockSize
	return fmt.Sprintf("[mem %#016x-%#016x]", start, start+memBlockSize-1)
}

func defaultAutoOnline(profile string) string {
	if profile == Profile61 {
		return "offline"
	}
	return "online"
}

func (k *Kernel) mem() *memoryState {
	if k.st.Memory == nil {
		k.st.Memory = &memoryState{AutoOnline: defaultAutoOnline(k.st.Profile)}
	}
	return k.st.Memory
}

// regionNode is the NUMA node of a region's memory: one proximity domain
// per CXL window after the CPUs' node 0 (the lab's window was node 1).
func (k *Kernel) regionNode(r *regionState) int {
	if rd := k.rds[r.RootDecoder]; rd != nil {
		return 1 + rd.Index
	}
	return 1
}

func memoryRootDev() *device {
	return &device{kind: kindMemoryRoot, name: "memory", path: memoryRootPath, subsystem: "memory"}
}

func memBlockDev(b *memBlockState) *device {
	return &device{kind: kindMemBlock, name: b.name(), path: memoryRootPath + "/" + b.name(), subsystem: "memory", bus: "memory", ref: b.name()}
}

func (k *Kernel) block(name string) *memBlockState {
	for _, b := range k.mem().Blocks {
		if b.name() == name {
			return b
		}
	}
	return nil
}

// memoryAttrs are the files of devices/system/memory and of a block.
func (k *Kernel) memoryAttrs(d *device, as *[]attr, links map[string]string) {
	m := k.mem()
	if d.kind == kindMemoryRoot {
		*as = append(*as,
			attr{name: "block_size_bytes", mode: 0o444, show: func() string { return fmt.Sprintf("%x\n", memBlockSize) }},
			attr{name: "auto_online_blocks", mode: 0o644, show: func() string { return m.AutoOnline + "\n" },
				store: func(data []byte) error {
					switch v := trimNL(data); v {
					case "offline", "online", "online_movable", "online_kernel":
						m.AutoOnline = v
						return nil
					}
					return unix.EINVAL
				}})
		return
	}
	b := k.block(d.ref)
	if b == nil {
		return
	}
	links[fmt.Sprintf("node%d", b.Node)] = fmt.Sprintf("devices/system/node/node%d", b.Node)
	links["subsystem"] = "bus/memory"
	*as = append(*as,
		attr{name: "phys_index", mode: 0o444, show: func() string { return fmt.Sprintf("%08x\n", b.Index) }},
		attr{name: "state", mode: 0o644, show: func() string { return b.State + "\n" }, store: func(data []byte) error {
			return k.blockStateStore(b, trimNL(data))
		}},
		attr{name: "valid_zones", mode: 0o444, show: func() string {
			if b.State == "online" {
				return b.Zone + "\n"
			}
			return "Normal Movable\n"
		}},
	)
}

// blockStateStore is state_store of a memory block: online, online_kernel,
// online_movable or offline (device_online/device_offline).
func (k *Kernel) blockStateStore(b *memBlockState, v string) error {
	switch v {
	case "online", "online_kernel", "online_movable":
		if b.State == "online" {
			return nil // device_online of an online device: nothing to do
		}
		b.Zone = "Normal"
		if v == "online_movable" {
			b.Zone = "Movable"
		}
		b.State = "online"
		k.emit(uevent.Online, k.devAt(memoryRootPath+"/"+b.name()))
		return nil
	case "offline":
		return k.offlineBlock(b)
	}
	return unix.EINVAL
}

// offlineBlock is offline_pages: migrate every page away, or fail. Pages
// in ZONE_MOVABLE always migrate (the lab never saw EBUSY there); a
// ZONE_NORMAL block with unmovable pages fails at once with EBUSY; under
// memory pressure the kernel loops until the writer is signalled (EINTR).
func (k *Kernel) offlineBlock(b *memBlockState) error {
	if b.State == "offline" {
		return nil
	}
	if b.Pinned && b.Zone != "Movable" {
		k.klog.kernel(
			fmt.Sprintf("page:%016x refcount:1 mapcount:0 mapping:0000000000000000 index:0x0 pfn:%#x", 0xffffea0000000000+b.Index*memBlockSize/64, b.Index*memBlockSize>>12),
			"page dumped because: unmovable page",
			fmt.Sprintf("memory offlining %s failed due to failure to isolate range", b.rangeString()))
		return unix.EBUSY
	}
	if k.mem().StallOffline {
		ctx := k.writeCtx // set by writeFile, read before k.mu is dropped
		release := k.offlineRelease
		k.mu.Unlock()
		select {
		case <-ctx.Done():
			k.mu.Lock()
			k.klog.kernel(fmt.Sprintf("memory offlining %s failed due to signal backoff", b.rangeString()))
			return unix.EINTR
		case <-release: // the pressure went (StallOffline(false), Close)
			k.mu.Lock()
		}
		if b.State == "offline" {
			return nil
		}
	}
	b.State = "offline"
	k.emit(uevent.Offline, k.devAt(memoryRootPath+"/"+b.name()))
	return nil // an orphan stays registered, offline, until reboot
}

// kmemProbe is dev_dax_kmem_probe: add the blocks that lie wholly inside
// the dax device's range, online each at once unless auto_online_blocks
// is offline (online: ZONE_NORMAL).
func (k *Kernel) kmemProbe(dd *device) error {
	r := k.regions[dd.ref]
	if r == nil || r.Res == nil {
		return unix.ENXIO
	}
	m := k.mem()
	first := (r.Res.Start + memBlockSize - 1) / memBlockSize
	end := (r.Res.Start + r.Res.Size) / memBlockSize
	if first >= end {
		return unix.EINVAL
	}
	for i := first; i < end; i++ {
		if old := k.block(fmt.Sprintf("memory%d", i)); old != nil {
			// A leaked block from an earlier region still claims the range.
			k.klog.kernel(fmt.Sprintf("kmem %s: mapping0: %s could not reserve region", dd.name, old.rangeString()))
			return unix.EBUSY
		}
	}
	for i := first; i < end; i++ {
		b := &memBlockState{Index: i, State: "offline", Node: k.regionNode(r), Region: r.Name, Dax: dd.name}
		m.Blocks = append(m.Blocks, b)
		k.add(memBlockDev(b))
		if m.AutoOnline != "offline" {
			zone := "online"
			if m.AutoOnline == "online_movable" {
				zone = "online_movable"
			}
			_ = k.blockStateStore(b, zone)
		}
	}
	r.Kmem = true
	k.bind(dd, "kmem")
	return nil
}

// kmemRemove is dev_dax_kmem_remove: remove the blocks; an online block
// cannot be removed, and kmem then lets go of the dax device anyway,
// leaving the block online and its range claimed until reboot.
func (k *Kernel) kmemRemove(dd *device) {
	// A region being deleted has left k.regions already (unregister_region
	// runs before its driver is released).
	var r *regionState
	for _, o := range k.st.Regions {
		if o.Name == dd.ref {
			r = o
		}
	}
	m := k.mem()
	var keep []*memBlockState
	leaked := false
	for _, b := range m.Blocks {
		if b.Dax != dd.name || b.Region != dd.ref || b.Orphan {
			keep = append(keep, b)
			continue
		}
		if b.State == "online" {
			k.klog.kernel(fmt.Sprintf("removing memory fails, because memory %s is onlined", b.rangeString()))
			b.Orphan = true
			leaked = true
			keep = append(keep, b)
			continue
		}
		k.remove(k.devAt(memoryRootPath + "/" + b.name()))
	}
	m.Blocks = keep
	if leaked && r != nil && r.Res != nil {
		k.klog.kernel(fmt.Sprintf("kmem %s: mapping0: %#x-%#x cannot be hotremoved until the next reboot", dd.name, r.Res.Start, r.Res.Start+r.Res.Size-1))
		m.Leak++
		k.klog.printf("cxlsim: LEAK: %s: memory online after kmem let go of %s: its range stays claimed until reboot", dd.ref, dd.name)
	}
	if r != nil {
		r.Kmem = false
	}
	k.unbind(dd)
}

// memoryUndecoded runs when a region's decoders stop decoding its range
// (decode reset, delete): blocks still online there now read back zeros.
func (k *Kernel) memoryUndecoded(r *regionState) {
	if k.st.Memory == nil {
		return
	}
	var hit []string
	node := -1
	for _, b := range k.st.Memory.Blocks {
		if b.Region != r.Name || b.Undecoded || b.State != "online" {
			continue
		}
		b.Undecoded = true
		hit = append(hit, b.name())
		node = b.Node
	}
	if len(hit) == 0 {
		return
	}
	// One finding per teardown, however many blocks it hit.
	k.st.Memory.Corruption++
	k.klog.printf("cxlsim: CORRUPTION: %s: %d memory block(s) (%s) online on node %d over a range no longer decoded: their pages read back zeros",
		r.Name, len(hit), strings.Join(hit, " "), node)
}

// leakedRanges are the block ranges still claimed by blocks whose region
// is gone: alloc_free_mem_region skips them.
func (k *Kernel) leakedRanges() []hpa {
	if k.st.Memory == nil {
		return nil
	}
	var out []hpa
	for _, b := range k.st.Memory.Blocks {
		if b.Orphan {
			out = append(out, hpa{Start: b.Index * memBlockSize, Size: memBlockSize})
		}
	}
	return out
}

// daxDriverStore handles bind and unbind of the dax bus's drivers
// (device_dax, kmem), as daxctl reconfigure-device writes them.
func (k *Kernel) daxDriverStore(drv, file, name string) error {
	d := k.busDev("dax", name)
	if d == nil || d.kind != kindDaxDev {
		return unix.ENODEV
	}
	switch file {
	case "unbind":
		if d.driver != drv {
			return unix.ENODEV
		}
		if drv == "kmem" {
			k.kmemRemove(d)
		} else {
			k.unbind(d)
		}
		if r := k.regions[d.ref]; r != nil {
			r.DaxUnbound = true
		}
		return nil
	case "bind":
		if d.driver != "" {
			return unix.EBUSY
		}
		if drv == "kmem" {
			if err := k.kmemProbe(d); err != nil {
				return err
			}
		} else {
			k.bind(d, drv)
		}
		if r := k.regions[d.ref]; r != nil {
			r.DaxUnbound = false
		}
		return nil
	}
	return unix.EINVAL
}

// Tests and the lab's steps.

// ReconfigureSystemRAM does what `daxctl reconfigure-device -m system-ram
// daxN.M` does: refuse when the kernel will auto-online the memory
// (daxctl's "kernel policy will auto-online memory, aborting", EBUSY),
// else move the device from device_dax to kmem and online each block
// movable.
func (k *Kernel) ReconfigureSystemRAM(dax string) error {
	k.mu.Lock()
	auto := k.mem().AutoOnline
	k.mu.Unlock()
	if auto != "offline" {
		return fmt.Errorf("daxctl: %s: kernel policy will auto-online memory, aborting: %w", dax, unix.EBUSY)
	}
	if err := k.WriteFile("bus/dax/drivers/device_dax/unbind", []byte(dax)); err != nil {
		return err
	}
	if err := k.WriteFile("bus/dax/drivers/kmem/bind", []byte(dax)); err != nil {
		return err
	}
	for _, b := range k.Blocks(dax) {
		if err := k.WriteFile(memoryRootPath+"/"+b+"/state", []byte("online_movable")); err != nil {
			return err
		}
	}
	return nil
}

// Blocks lists the memory blocks kmem added for a dax device, by index.
func (k *Kernel) Blocks(dax string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, b := range k.mem().Blocks {
		if b.Dax == dax && !b.Orphan {
			out = append(out, b.name())
		}
	}
	return out
}

// PinMemory puts unmovable pages on a block (a process's page tables on
// the block's node): offlining it fails with EBUSY while it is in
// ZONE_NORMAL.
func (k *Kernel) PinMemory(block string, pinned bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.block(block)
	if b == nil {
		return pathErr("pin", block, unix.ENOENT)
	}
	b.Pinned = pinned
	return nil
}

// StallOffline makes every offline loop until its writer is signalled, as
// with the node it migrates to nearly full.
func (k *Kernel) StallOffline(on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.mem().StallOffline = on
	switch {
	case on && k.offlineRelease == nil:
		k.offlineRelease = make(chan struct{})
	case !on && k.offlineRelease != nil:
		close(k.offlineRelease)
		k.offlineRelease = nil
	}
}

// MemoryFindings returns how many LEAK and CORRUPTION findings the model
// has printed: memory left online by a teardown, and memory online over a
// range no longer decoded.
func (k *Kernel) MemoryFindings() (leak, corruption int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.st.Memory == nil {
		return 0, 0
	}
	return k.st.Memory.Leak, k.st.Memory.Corruption
}

// WriteFileContext is WriteFile for a writer that can be signalled: a
// store that waits in the kernel until a signal (offline under memory
// pressure) ends with EINTR when ctx ends, as the real write does when
// its thread is signalled.
func (k *Kernel) WriteFileContext(ctx context.Context, name string, data []byte) error {
	return k.writeFile(ctx, name, data)
}
