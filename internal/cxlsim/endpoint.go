package cxlsim

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Endpoint decoder stores (drivers/cxl/core/port.c, hdm.c): mode and
// dpa_size. DPA is allocated per memdev in decoder id order: ram from the
// bottom of the device, pmem above the ram partition.

// modeStore is mode_store → cxl_dpa_set_mode.
func (k *Kernel) modeStore(ed *epDecState, data []byte) error {
	var mode string
	switch trimNL(data) {
	case "pmem":
		mode = "pmem"
	case "ram":
		mode = "ram"
	default:
		return unix.EINVAL
	}
	if ed.Enabled {
		return unix.EBUSY
	}
	spec := k.st.Topology.Memdevs[ed.Memdev]
	if mode == "pmem" && spec.PmemSize == 0 || mode == "ram" && spec.RAMSize == 0 {
		k.klog.kernel(fmt.Sprintf("cxl %s: no available %s capacity", ed.Name, mode))
		return unix.ENXIO
	}
	ed.Mode = mode
	return nil
}

// dpaSizeStore is dpa_size_store: free the old allocation first, then
// allocate the new size. A failed allocation therefore leaves the decoder
// with none, as both captured kernels show.
func (k *Kernel) dpaSizeStore(ed *epDecState, data []byte) error {
	size, errno := kstrtoull(data)
	if errno != 0 {
		return errno
	}
	if size%sz256M != 0 {
		return unix.EINVAL
	}
	if err := k.dpaFree(ed); err != nil {
		return err
	}
	if size == 0 {
		return nil
	}
	return k.dpaAlloc(ed, size)
}

// dpaFree is cxl_dpa_free.
func (k *Kernel) dpaFree(ed *epDecState) error {
	if ed.DPA == nil {
		return nil
	}
	if ed.Region != "" {
		k.klog.kernel(fmt.Sprintf("cxl %s: decoder assigned to: %s", ed.Name, ed.Region))
		return unix.EBUSY
	}
	if ed.Enabled {
		return unix.EBUSY
	}
	p := k.ports[ed.Port]
	if ed.Index != p.HdmEnd {
		return unix.EBUSY
	}
	ed.DPA = nil
	p.HdmEnd--
	return nil
}

// dpaAlloc is cxl_dpa_alloc + __cxl_dpa_reserve.
func (k *Kernel) dpaAlloc(ed *epDecState, size uint64) error {
	if ed.Region != "" || ed.Enabled {
		return unix.EBUSY
	}
	spec := k.st.Topology.Memdevs[ed.Memdev]
	ram, pmem := uint64(spec.RAMSize), uint64(spec.PmemSize)
	freeRAM, freePmem := uint64(0), ram
	pmemUsed := false
	for _, o := range k.st.Endpoint {
		if o.Memdev != ed.Memdev || o.DPA == nil {
			continue
		}
		end := o.DPA.Start + o.DPA.Size
		if o.DPA.Mode == "ram" && end > freeRAM {
			freeRAM = end
		}
		if o.DPA.Mode == "pmem" {
			pmemUsed = true
			if end > freePmem {
				freePmem = end
			}
		}
	}
	var start, avail, skip uint64
	switch ed.Mode {
	case "ram":
		start, avail = freeRAM, ram-freeRAM
	case "pmem":
		start, avail = freePmem, ram+pmem-freePmem
		if !pmemUsed {
			skip = ram - freeRAM
		}
	default:
		return unix.EINVAL // mode not set
	}
	if size > avail {
		k.klog.kernel(fmt.Sprintf("cxl %s: %#018x exceeds available %s capacity: %#018x", ed.Name, size, ed.Mode, avail))
		return unix.ENOSPC
	}
	p := k.ports[ed.Port]
	if p.HdmEnd+1 != ed.Index {
		k.klog.kernel(fmt.Sprintf("cxl_port %s: decoder%s.%d: expected decoder%s.%d", p.Name, portNumber(p.Name), ed.Index, portNumber(p.Name), p.HdmEnd+1))
		return unix.EBUSY
	}
	ed.DPA = &dpaAlloc{Start: start, Size: size, Skip: skip, Mode: ed.Mode}
	p.HdmEnd = ed.Index
	return nil
}
