package cxlsim

import (
	"time"

	"golang.org/x/sys/unix"
)

// deleteRegionStore is the UNPATCHED delete_region_store (v6.0 .. v7.0):
//
//	cxlr = device_find_child(rootdec, buf)        ENODEV if absent, else a reference
//	devm_release_action(ACPI0017, unregister_region, cxlr)
//	put_device(cxlr)
//	return len
//
// Nothing serializes two callers. The model spends the configured delete
// delay between the lookup and devm_release_action with k.mu released,
// which is the window the real kernel has. When the region's devres entry
// is gone by then (a concurrent delete, or cxl_acpi's devres_release_all
// took it), devm_release_action WARNs and the write still succeeds (race 1
// and race 2). When the entry is there but the region is still being
// auto-assembled, unregistering it frees memory __construct_region keeps
// using: KASAN use-after-free (race 3). When the region is a bound pmem
// region whose nd region is not registered yet, libnvdimm oopses.
func (k *Kernel) deleteRegionStore(rd *rootDecoderState, data []byte) error {
	if fixedDelete(k.st.Profile) {
		return k.deleteRegionStoreFixed(rd, data)
	}
	name := trimNL(data) // sysfs_streq
	r := k.regions[name]
	if r == nil || r.RootDecoder != rd.Name || r.unregistered {
		return unix.ENODEV
	}
	r.refs++ // device_find_child's reference
	if d := k.cfg.deleteDelay; d > 0 {
		k.mu.Unlock()
		k.cfg.clock.Sleep(d)
		k.mu.Lock()
	}
	var err error
	if r.action {
		r.action = false
		if r.Assembling {
			k.kasanConstruct(r.Name)
		}
		err = k.unregisterRegion(r, []string{"devm_release_action+0x51/0x90", "delete_region_store+0x6d/0x90"})
	} else {
		k.warnDevres("delete_region_store+0x6d/0x90")
	}
	k.putRegion(r)
	return err
}

// unregisterRegion is unregister_region: device_del (driver released, the
// remove uevent), every target detached (decoders reset when committed),
// the HPA returned to the window, and the registration reference dropped.
// Endpoint DPA is not freed. store is the trace of the caller, for an
// oops.
func (k *Kernel) unregisterRegion(r *regionState, store []string) error {
	r.unregistered = true
	delete(k.regions, r.Name)
	err := k.releaseRegionDriver(r, append([]string{"device_del+0x163/0x3e0", "unregister_region+0x15/0x80"}, store...))
	if d := k.devAt(k.regionPath(r)); d != nil {
		k.remove(d)
	}
	// The kernel detaches positions < interleave_ways only; the model
	// detaches every attached target so that no decoder keeps pointing at
	// a freed region (see doc.go).
	for i := 0; i < maxTargets; i++ {
		if r.Targets[i] != "" {
			if e := k.regionDetach(r, i, nil); e != nil && err == nil {
				err = e
			}
		}
	}
	if r.Assembling {
		// Decoders firmware committed for targets not attached yet.
		for _, name := range r.AssemblyTargets {
			if ed := k.eds[name]; ed != nil && ed.Region == "" && ed.Enabled {
				k.resetDecoder(k.ports[ed.Port], ed.Index, &ed.Enabled)
			}
		}
		for _, sd := range k.st.Switch {
			if sd.Region == r.Name {
				if sd.Enabled {
					k.resetDecoder(k.ports[sd.Port], sd.Index, &sd.Enabled)
				}
				sd.Region = ""
			}
		}
	}
	k.memoryUndecoded(r)
	r.Res = nil
	r.Assembling = false
	for i, o := range k.st.Regions {
		if o == r {
			k.st.Regions = append(k.st.Regions[:i], k.st.Regions[i+1:]...)
			break
		}
	}
	k.putRegion(r)
	return err
}

// deleteRegionStoreFixed is delete_region_store with the upstream fix
// (ProfileFixed). What the fix changes, as the model has it (inferred from
// the fix's description and one newest-kernel run, not captured; see
// doc.go, model choice 22):
//
//   - the lookup and the release are one step under the region lock: a
//     second deleter of the same region, overlapping or after, finds it
//     gone and gets ENODEV, never the devres WARNING;
//   - a delete of a region still under auto-assembly waits until
//     __construct_region is done, then deletes it: no use-after-free;
//   - a region whose devres entry cxl_acpi's teardown already took is
//     ENODEV, not a WARNING.
//
// The delete delay is still spent, with the region marked as being
// deleted, so deletes take as long as on the unpatched kernel. The nd
// registration oops is libnvdimm's and the fix does not touch it.
func (k *Kernel) deleteRegionStoreFixed(rd *rootDecoderState, data []byte) error {
	name := trimNL(data)
	r := k.regions[name]
	if r == nil || r.RootDecoder != rd.Name || r.unregistered || r.deleting {
		return unix.ENODEV
	}
	r.deleting = true
	r.refs++
	defer func() {
		r.deleting = false
		k.putRegion(r)
	}()
	for r.Assembling && !r.unregistered && !k.closed {
		k.mu.Unlock()
		k.cfg.clock.Sleep(time.Millisecond)
		k.mu.Lock()
	}
	if d := k.cfg.deleteDelay; d > 0 {
		k.mu.Unlock()
		k.cfg.clock.Sleep(d)
		k.mu.Lock()
	}
	if r.unregistered || !r.action {
		return unix.ENODEV
	}
	r.action = false
	return k.unregisterRegion(r, []string{"devm_release_action+0x51/0x90", "delete_region_store+0x6d/0x90"})
}
