package sysfs

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/devname"
)

// What a region's memory is doing: the device-dax instances carved from
// it and, when dax kmem gave them to the page allocator, the memory blocks
// of /sys/devices/system/memory that cover its physical range. A region
// with an online block must not be torn down: the kernel lets the unbind
// and the delete succeed, leaves the block online over a range nothing
// decodes any more, and every page on it reads back zeros.
const (
	memoryDir    = "devices/system/memory"
	daxDevices   = "bus/dax/devices"
	memoryPrefix = "memory"
	// AutoOnlineBlocksPath is the hotplug policy: "offline", or "online"
	// (and online_movable, online_kernel), which onlines a block as soon
	// as kmem adds it.
	AutoOnlineBlocksPath = memoryDir + "/auto_online_blocks"
)

// Memory block states as the state file shows them.
const (
	BlockOnline  = "online"
	BlockOffline = "offline"
)

// Drivers a dax device can be bound to.
const (
	DaxDriverKmem   = "kmem"       // System RAM (daxctl's mode system-ram)
	DaxDriverDevice = "device_dax" // a character device (daxctl's mode devdax)
)

// ValidMemoryBlockName reports whether s is a memory block's name
// (memory115).
func ValidMemoryBlockName(s string) bool { return devname.IsMemoryBlock(s) }

// ValidDaxDeviceName reports whether s is a dax device's name (dax0.0).
func ValidDaxDeviceName(s string) bool { return devname.IsDAXDevice(s) }

// DaxDriverPath is the bind or unbind file of a dax bus driver
// (DaxDriverKmem, DaxDriverDevice); "" for anything else.
func DaxDriverPath(driver, file string) string {
	if (driver != DaxDriverKmem && driver != DaxDriverDevice) || (file != "bind" && file != "unbind") {
		return ""
	}
	return "bus/dax/drivers/" + driver + "/" + file
}

// MemoryBlockStatePath is the state file of a memory block, the one a
// writer stores "offline" or "online" in. The error wraps unix.EINVAL for
// a name that is not memory<N>.
func MemoryBlockStatePath(block string) (string, error) {
	if !ValidMemoryBlockName(block) {
		return "", fmt.Errorf("memory block name %q: %w", block, unix.EINVAL)
	}
	return memoryDir + "/" + block + "/state", nil
}

// DaxDevice is a device-dax instance carved from a region (below
// dax_regionN for ram, below the nd region's dax device for pmem).
type DaxDevice struct {
	Name string // daxX.Y
	// Driver is DaxDriverKmem when its memory was handed to the page
	// allocator, DaxDriverDevice for a character device, "" unbound.
	Driver string
	// TargetNode is the NUMA node kmem onlines its memory to (target_node);
	// -1 when the kernel does not say.
	TargetNode int
	Size       uint64 // size
}

// SystemRAM reports whether the device's memory belongs to the page
// allocator (bound to kmem).
func (d DaxDevice) SystemRAM() bool { return d.Driver == DaxDriverKmem }

// MemoryBlock is one hot-pluggable memory block that overlaps a region's
// physical range.
type MemoryBlock struct {
	Name  string // memoryN; N is phys_index
	Index uint64 // phys_index: the block's start is Index × block size
	// State is "online", "offline" or, while an offline runs,
	// "going-offline".
	State string
	// ValidZones is the zone of an online block (Movable, Normal) or the
	// zones it could be onlined to.
	ValidZones string
	Node       int // from the nodeN link; -1 when there is none
}

// Online reports whether the page allocator may hand out the block's
// pages: anything but offline.
func (b MemoryBlock) Online() bool { return b.State != BlockOffline }

// Movable reports whether an online block is in ZONE_MOVABLE, where its
// pages can be migrated away and offlining normally succeeds.
func (b MemoryBlock) Movable() bool { return strings.TrimSpace(b.ValidZones) == "Movable" }

// RegionMemory is what a region's memory is doing.
type RegionMemory struct {
	// BlockSize is block_size_bytes; 0 when no block overlaps the region
	// (and on a kernel without memory hotplug).
	BlockSize uint64
	Dax       []DaxDevice   // the region's dax devices, by name
	Blocks    []MemoryBlock // blocks overlapping the region's range, by index
}

// OnlineBlocks returns the blocks the page allocator uses.
func (m RegionMemory) OnlineBlocks() []MemoryBlock {
	var out []MemoryBlock
	for _, b := range m.Blocks {
		if b.Online() {
			out = append(out, b)
		}
	}
	return out
}

// OnlineBytes is how much of the region's memory is online.
func (m RegionMemory) OnlineBytes() uint64 {
	return uint64(len(m.OnlineBlocks())) * m.BlockSize
}

// Nodes lists the NUMA nodes of the online blocks, ascending, no repeats.
func (m RegionMemory) Nodes() []int {
	var out []int
	for _, b := range m.OnlineBlocks() {
		out = append(out, b.Node)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ReadRegionMemory reads the dax devices below a region and the memory
// blocks overlapping its HPA range; ReadRegion and Scan fill
// Region.Memory with it, and the engine calls it alone when a memory
// block's uevent arrives. A kernel without dax or memory
// hotplug has neither directory: that is no memory, not an error.
//
// It reads:
//
//	ReadDir  bus/dax/devices; ReadLink bus/dax/devices/D (kept when the
//	         device's path runs through the region's directory or its nd region)
//	ReadLink D/driver; ReadFile D/target_node, D/size
//	ReadFile devices/system/memory/block_size_bytes   when the region has a range
//	ReadDir  devices/system/memory
//	ReadDir memoryN (nodeN link); ReadFile memoryN/state, memoryN/valid_zones
//	         (only with the nodeN link), memoryN/phys_index; for each block in the range
func (f *FS) ReadRegionMemory(reg Region) (RegionMemory, error) {
	var m RegionMemory
	dax, err := f.readRegionDax(reg.Name)
	if err != nil {
		return RegionMemory{}, err
	}
	m.Dax = dax
	if reg.Resource == nil || reg.Size == 0 {
		return m, nil
	}
	bs, err := f.b.ReadFile(memoryDir + "/block_size_bytes")
	if isGone(err) {
		return m, nil // no memory hotplug
	}
	if err != nil {
		return RegionMemory{}, fmt.Errorf("read %s/block_size_bytes: %w", memoryDir, err)
	}
	blockSize, err := strconv.ParseUint(strings.TrimSpace(string(bs)), 16, 64)
	if err != nil || blockSize == 0 {
		return RegionMemory{}, &ParseError{File: memoryDir + "/block_size_bytes", Value: strings.TrimSpace(string(bs)), Err: errors.New("not a non-zero hex size")}
	}
	first := *reg.Resource / blockSize
	last := (*reg.Resource + reg.Size - 1) / blockSize
	names, err := f.b.ReadDir(memoryDir)
	if err != nil {
		return RegionMemory{}, fmt.Errorf("list %s: %w", memoryDir, err)
	}
	for _, name := range names {
		if !ValidMemoryBlockName(name) {
			continue
		}
		n, _ := strconv.ParseUint(strings.TrimPrefix(name, memoryPrefix), 10, 64)
		if n < first || n > last {
			continue
		}
		b, err := f.readMemoryBlock(name)
		if isGone(err) {
			continue // removed while read: kmem let it go
		}
		if err != nil {
			return RegionMemory{}, err
		}
		m.Blocks = append(m.Blocks, b)
	}
	if len(m.Blocks) > 0 {
		m.BlockSize = blockSize
	}
	slices.SortFunc(m.Blocks, func(a, b MemoryBlock) int { return cmp.Compare(a.Index, b.Index) })
	return m, nil
}

// readMemoryBlock reads one block directory.
//
// valid_zones is read only once the block has its nodeN link. A hot-added
// block is visible (and its add uevent sent) before the kernel gives it
// its node; valid_zones read in that window dereferences the node of
// NUMA_NO_NODE: 6.12 oopsed in valid_zones_show ← zone_for_pfn_range,
// NULL pointer, under the daemon's read right after daxctl onlined a
// region's memory (the QEMU suite's sysram boot, docs/kernel.md). The
// kernel sets the node before it makes the link, so a block with the link
// is past the window; without it ValidZones stays empty and the next
// uevent (the link's, the online's) reads it again.
func (f *FS) readMemoryBlock(name string) (MemoryBlock, error) {
	dir := memoryDir + "/" + name
	b := MemoryBlock{Name: name, Node: -1}
	read := func(attr string) (string, error) {
		v, err := f.b.ReadFile(dir + "/" + attr)
		if err != nil {
			return "", fmt.Errorf("read %s/%s: %w", dir, attr, err)
		}
		return strings.TrimSpace(string(v)), nil
	}
	entries, err := f.b.ReadDir(dir)
	if err != nil {
		return MemoryBlock{}, fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		if n, ok := strings.CutPrefix(e, "node"); ok {
			if id, ok := devname.ParseID(n); ok {
				b.Node = id
			}
		}
	}
	if b.State, err = read("state"); err != nil {
		return MemoryBlock{}, err
	}
	if b.Node >= 0 {
		if b.ValidZones, err = read("valid_zones"); err != nil && !isGone(err) {
			return MemoryBlock{}, err // absent before v4.8: leave it empty
		}
	}
	idx, err := read("phys_index")
	if err != nil {
		return MemoryBlock{}, err
	}
	if b.Index, err = strconv.ParseUint(idx, 16, 64); err != nil {
		return MemoryBlock{}, &ParseError{File: dir + "/phys_index", Value: idx, Err: err}
	}
	return b, nil
}

// readRegionDax finds the dax devices carved from a region. The dax bus
// lists them all; a device is the region's when its directory lies below
// the region's (ram: regionN/dax_regionN/daxN.M) or below the nd region
// of the same name (pmem: ndbusN/regionN/daxN.M/daxN.M).
func (f *FS) readRegionDax(region string) ([]DaxDevice, error) {
	names, err := f.b.ReadDir(daxDevices)
	if isGone(err) {
		return nil, nil // no dax bus
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", daxDevices, err)
	}
	var out []DaxDevice
	for _, name := range names {
		if !ValidDaxDeviceName(name) {
			continue
		}
		link, err := f.b.ReadLink(daxDevices + "/" + name)
		if isGone(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("readlink %s/%s: %w", daxDevices, name, err)
		}
		if !pathHas(link, region) {
			continue
		}
		d, err := f.readDaxDevice(name)
		if isGone(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func (f *FS) readDaxDevice(name string) (DaxDevice, error) {
	dir := daxDevices + "/" + name
	d := DaxDevice{Name: name, TargetNode: -1}
	drv, err := f.b.ReadLink(dir + "/driver")
	switch {
	case err == nil:
		d.Driver = drv[strings.LastIndexByte(drv, '/')+1:]
	case isGone(err):
	default:
		return DaxDevice{}, fmt.Errorf("readlink %s/driver: %w", dir, err)
	}
	if v, err := f.b.ReadFile(dir + "/target_node"); err == nil {
		if n, perr := strconv.Atoi(strings.TrimSpace(string(v))); perr == nil {
			d.TargetNode = n
		}
	} else if !isGone(err) {
		return DaxDevice{}, fmt.Errorf("read %s/target_node: %w", dir, err)
	}
	if v, err := f.b.ReadFile(dir + "/size"); err == nil {
		d.Size, _ = strconv.ParseUint(strings.TrimSpace(string(v)), 10, 64)
	} else if !isGone(err) {
		return DaxDevice{}, fmt.Errorf("read %s/size: %w", dir, err)
	}
	return d, nil
}

// pathHas reports whether one component of a slash-separated path is name.
func pathHas(p, name string) bool {
	for _, c := range strings.Split(p, "/") {
		if c == name {
			return true
		}
	}
	return false
}
