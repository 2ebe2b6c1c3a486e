package cxlsim

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// The cxl_region driver: bind probes a committed region and registers what
// lives below it; unbind (and commit 0, a departing target, device_del)
// releases it.

// regionBindStore is bind_store of the cxl_region driver.
func (k *Kernel) regionBindStore(name string) error {
	d := k.busDev("cxl", name)
	if d == nil || d.kind != kindRegion {
		return unix.ENODEV
	}
	if d.driver != "" {
		return unix.EBUSY
	}
	r := k.regions[name]
	return k.probeRegion(r)
}

// probeRegion is cxl_region_probe. For pmem it registers pmem_regionN
// (bound at once to cxl_pmem_region) and schedules the nd region, which
// libnvdimm registers asynchronously; for ram it registers dax_regionN and
// schedules the device-dax instance.
func (k *Kernel) probeRegion(r *regionState) error {
	if r.State < stateCommit {
		k.klog.kernel(fmt.Sprintf("cxl_region %s: config state: %d", r.Name, r.State), fmt.Sprintf("cxl_region %s: probe: -6", r.Name))
		return unix.ENXIO
	}
	if r.NeedsReset {
		return unix.ENXIO
	}
	rdev := k.devAt(k.regionPath(r))
	if r.Mode == "pmem" {
		pm := k.add(k.pmemRegionDev(r))
		k.bind(pm, "cxl_pmem_region")
	} else {
		dr := k.add(k.daxRegionDev(r))
		k.bind(dr, "cxl_dax_region")
	}
	k.bind(rdev, "cxl_region")
	r.Bound = true
	k.scheduleRegistration(r)
	return nil
}

func (k *Kernel) scheduleRegistration(r *regionState) {
	r.Pending = true
	r.stopRegister = k.after(k.cfg.registerDelay, func() {
		if r.Pending && !r.unregistered && r.Bound {
			k.completeRegistration(r)
		}
	})
}

// completeRegistration registers the nd region and its seed devices
// (pmem), or the dax device (ram).
func (k *Kernel) completeRegistration(r *regionState) {
	r.Pending = false
	r.Registered = true
	if r.Mode == "pmem" {
		nd := k.add(ndRegionDev(r))
		k.bind(nd, "nd_region")
		for _, s := range ndSeeds(r) {
			k.add(s)
		}
		return
	}
	dd := k.add(k.daxDev(r))
	if !k.cfg.systemRAM {
		k.bind(dd, "device_dax")
		return
	}
	// WithSystemRAM: kmem takes the device and its blocks go online
	// movable, whatever auto_online_blocks says.
	if err := k.kmemProbe(dd); err != nil {
		k.klog.kernel(fmt.Sprintf("kmem %s: probe failed: %v", dd.name, err))
		k.bind(dd, "device_dax")
		return
	}
	for _, b := range k.mem().Blocks {
		if b.Dax == dd.name && b.Region == r.Name && !b.Orphan {
			if b.State == "online" {
				b.State = "offline" // auto-online put it in ZONE_NORMAL
			}
			_ = k.blockStateStore(b, "online_movable")
		}
	}
}

// regionUnbindStore is unbind_store of the cxl_region driver.
func (k *Kernel) regionUnbindStore(name string) error {
	d := k.busDev("cxl", name)
	if d == nil || d.driver != "cxl_region" {
		return unix.ENODEV
	}
	return k.releaseRegionDriver(k.regions[name], []string{"device_release_driver_internal+0x1c4/0x200", "unbind_store+0x60/0xa0"})
}

// releaseRegionDriver is device_release_driver on a region: the devres of
// the region driver tear down, in the captured order, the nd seeds, the nd
// region, pmem_regionN (or the dax device and dax_regionN), then the
// region's own unbind. Tearing down an nd region whose asynchronous
// registration has not run yet oopses in kill_device, whatever the caller
// (docs/kernel.md#nd-oops shows it under delete_region_store).
func (k *Kernel) releaseRegionDriver(r *regionState, store []string) error {
	if r == nil || !r.Bound {
		return nil
	}
	oops := false
	if r.Pending {
		if r.stopRegister != nil {
			r.stopRegister()
		}
		r.Pending = false
		oops = r.Mode == "pmem"
	}
	if r.Mode == "pmem" {
		if oops {
			k.oopsNd(store)
		}
		if r.Registered {
			for _, s := range ndSeeds(r) {
				k.remove(k.devAt(s.path))
			}
			nd := k.devAt(ndRegionDev(r).path)
			k.unbind(nd)
			k.remove(nd)
		}
		pm := k.devAt(k.pmemRegionDev(r).path)
		k.unbind(pm)
		k.remove(pm)
	} else {
		if r.Registered {
			dd := k.devAt(k.daxDev(r).path)
			if dd != nil && dd.driver == "kmem" {
				k.kmemRemove(dd)
			}
			k.unbind(dd)
			k.remove(dd)
			r.DaxUnbound = false
		}
		dr := k.devAt(k.daxRegionDev(r).path)
		k.unbind(dr)
		k.remove(dr)
	}
	r.Registered = false
	r.Bound = false
	if d := k.devAt(k.regionPath(r)); d != nil {
		k.unbind(d)
	} else {
		k.emit("unbind", k.regionDev(r))
	}
	if oops {
		return fmt.Errorf("%w: %w", ErrKernelOops, unix.EFAULT)
	}
	return nil
}
