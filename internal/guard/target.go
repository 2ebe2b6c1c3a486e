package guard

import (
	"path/filepath"

	"github.com/cxlregion/cxlregiond/internal/devname"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// Kind is what a guarded file does, and so which writers an open of it
// needs. Its String is the bounded metrics label.
type Kind int

const (
	// KindDelete is a root decoder's delete_region. Besides the writer it
	// waits until the root decoder's regions have settled: deleting a pmem
	// region whose nd side is still registering oopses 6.1 and 6.12.
	KindDelete Kind = iota + 1
	// KindCreate is a root decoder's create_pmem_region or
	// create_ram_region.
	KindCreate
	// KindRegionDriver is the cxl_region driver's bind or unbind: which
	// root decoder the written region belongs to is unknown at open time,
	// so the open needs every writer.
	KindRegionDriver
	// KindACPIDriver is the cxl_acpi platform driver's bind or unbind:
	// it brings up or tears down whole roots, so it needs every writer.
	KindACPIDriver
	// KindPortDriver is the cxl_port driver's unbind: it tears down the
	// windows below the port, so it needs every writer.
	KindPortDriver
	// KindMemoryBlock is the state file of a memory block over a region's
	// range (devices/system/memory/memoryN/state): an `echo offline` or
	// `echo online` from a script must not interleave with the daemon
	// offlining the region's memory before a delete. It needs the
	// region's root decoder's writer.
	KindMemoryBlock
	// KindDaxDriver is the bind or unbind of the dax bus's kmem and
	// device_dax drivers (daxctl reconfigure-device): which region's dax
	// device it names is unknown at open time, so it needs every writer.
	KindDaxDriver
)

func (k Kind) String() string {
	switch k {
	case KindDelete:
		return "delete_region"
	case KindCreate:
		return "create_region"
	case KindRegionDriver:
		return "cxl_region_driver"
	case KindACPIDriver:
		return "cxl_acpi_driver"
	case KindPortDriver:
		return "cxl_port_driver"
	case KindMemoryBlock:
		return "memory_block"
	case KindDaxDriver:
		return "dax_driver"
	}
	return "unknown"
}

// perRoot reports whether a file of this kind belongs to one root
// decoder; the others affect every root decoder.
func (k Kind) perRoot() bool { return k == KindDelete || k == KindCreate || k == KindMemoryBlock }

// Target is one file the guard marks.
type Target struct {
	Path string // absolute path; symlinks are followed, the mark is on the file
	Kind Kind
	// RootDecoder owns a KindDelete, KindCreate or KindMemoryBlock file;
	// empty for the driver files, whose opens need every root decoder's
	// writer.
	RootDecoder string
	// Teardown marks a driver's unbind: its store unregisters regions
	// (cxl_region's unbind one, cxl_port's those below the port,
	// cxl_acpi's every one), and tearing down a pmem region whose nd
	// region libnvdimm is still registering oopses 6.1 and 6.12 whatever
	// the store (docs/kernel.md#nd-oops; the daemon's own Disable waits
	// for the same reason). So an open of it waits for the regions of
	// every root decoder in its scope to settle, as delete_region's does.
	Teardown bool
}

// SysfsTargets lists the guarded files of a sysfs tree rooted at root
// ("/sys") for the given root decoders: each one's delete_region,
// create_pmem_region and create_ram_region, and the driver files. Files
// this kernel lacks (create_ram_region on 6.1, the cxl_acpi driver while
// its module is not loaded) are listed anyway; Update skips what does not
// exist.
func SysfsTargets(root string) func(rootDecoders []string) []Target {
	return func(rootDecoders []string) []Target {
		var ts []Target
		for _, rd := range rootDecoders {
			if !devname.IsDecoder(rd) {
				continue // not a root decoder's name: nothing of ours to mark
			}
			for _, f := range []struct {
				attr string
				kind Kind
			}{
				{"delete_region", KindDelete},
				{"create_pmem_region", KindCreate},
				{"create_ram_region", KindCreate},
			} {
				p, err := sysfs.DeviceAttr(rd, f.attr)
				if err != nil {
					continue // unreachable: rd is a decoder name
				}
				ts = append(ts, Target{Path: filepath.Join(root, p), Kind: f.kind, RootDecoder: rd})
			}
		}
		for _, f := range []struct {
			path     string
			kind     Kind
			teardown bool
		}{
			{sysfs.RegionBindPath, KindRegionDriver, false},
			{sysfs.RegionUnbindPath, KindRegionDriver, true},
			{sysfs.ACPIBindPath, KindACPIDriver, false},
			{sysfs.ACPIUnbindPath, KindACPIDriver, true},
			{sysfs.PortUnbindPath, KindPortDriver, true},
			// A dax driver's unbind takes a dax device, not a region.
			{sysfs.DaxDriverPath(sysfs.DaxDriverKmem, "bind"), KindDaxDriver, false},
			{sysfs.DaxDriverPath(sysfs.DaxDriverKmem, "unbind"), KindDaxDriver, false},
			{sysfs.DaxDriverPath(sysfs.DaxDriverDevice, "bind"), KindDaxDriver, false},
			{sysfs.DaxDriverPath(sysfs.DaxDriverDevice, "unbind"), KindDaxDriver, false},
		} {
			ts = append(ts, Target{Path: filepath.Join(root, f.path), Kind: f.kind, Teardown: f.teardown})
		}
		return ts
	}
}

// MemoryBlockTargets lists the state files of the memory blocks over each
// region's range (sysfs root root), each owned by its region's root
// decoder: blocks maps a root decoder to its regions' block names.
func MemoryBlockTargets(root string, blocks map[string][]string) []Target {
	var ts []Target
	for rd, names := range blocks {
		for _, b := range names {
			p, err := sysfs.MemoryBlockStatePath(b)
			if err != nil {
				continue
			}
			ts = append(ts, Target{Path: filepath.Join(root, p), Kind: KindMemoryBlock, RootDecoder: rd})
		}
	}
	return ts
}
