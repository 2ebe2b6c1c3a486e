package cxlsim

import (
	"slices"

	"golang.org/x/sys/unix"
)

// Driver unbind and bind of cxl_acpi (the whole CXL tree) and unbind of
// cxl_port (what is below one port), in the orders the captures show
// (05-acpi-unbind-with-bound-region.txt, 06-acpi-rebind.txt).

var acpiTrace = []string{"release_nodes+0x40/0xb0", "devres_release_all+0x8c/0xc0", "device_unbind_cleanup+0xe/0x70",
	"device_release_driver_internal+0x1c4/0x200", "unbind_store+0x60/0xa0"}

func (k *Kernel) acpiUnbindStore(name string) error {
	if name != acpiName || !k.st.ACPIBound || k.acpiTearing {
		return unix.ENODEV
	}
	k.acpiTearing = true
	defer func() { k.acpiTearing = false }()
	return k.acpiTeardown()
}

// acpiTeardown is devres_release_all(ACPI0017): it takes every devres
// entry at once, then runs them last-registered first: the regions'
// unregister_region actions (each taking the teardown delay, with k.mu
// released, which is the window of race 2: a delete_region_store that
// found a region before this began finds no devres entry and WARNs),
// then the nvdimm bridge, the ports with their endpoints and decoders,
// the root decoders and root0. The platform device's unbind comes last.
func (k *Kernel) acpiTeardown() error {
	k.emit("remove", &device{kind: kindHidden, name: "wakeup8", path: wakeupPath, subsystem: "wakeup"})
	regs := k.sortedRegions()
	slices.Reverse(regs)
	for _, r := range regs {
		r.action = false
	}
	var err error
	for _, r := range regs {
		if r.unregistered {
			continue
		}
		if d := k.cfg.teardownDelay; d > 0 {
			k.mu.Unlock()
			k.cfg.clock.Sleep(d)
			k.mu.Lock()
		}
		if r.unregistered {
			continue
		}
		if e := k.unregisterRegion(r, acpiTrace); e != nil && err == nil {
			err = e
		}
	}
	// Regions created while the teardown ran lose their entry too.
	for _, r := range slices.Clone(k.st.Regions) {
		if !r.unregistered {
			r.action = false
			if e := k.unregisterRegion(r, acpiTrace); e != nil && err == nil {
				err = e
			}
		}
	}
	is61 := k.st.Profile == Profile61
	if k.hasBridge() {
		bridge := k.devAt(bridgePath)
		if is61 {
			k.unbind(bridge)
		}
		for _, m := range k.st.Memdevs {
			if m.NvdimmBound {
				nm := k.devAt(k.nmemDev(m).path)
				k.unbind(nm)
				k.remove(nm)
				k.unbind(k.devAt(k.nvdimmDev(m).path))
				m.NvdimmBound = false
			}
		}
		k.remove(k.devAt(ndCtlDev().path))
		bus := k.devAt(ndBusPath)
		k.unbind(bus)
		k.remove(bus)
		if !is61 {
			k.unbind(bridge)
		}
		k.remove(bridge)
	}
	for i := len(k.st.Topology.HostBridges) - 1; i >= 0; i-- {
		p := k.st.Ports[i]
		if p.Present {
			k.portTeardown(p, true)
		}
	}
	if is61 {
		k.unbindMemdevs()
	}
	for i := len(k.st.RootDecoders) - 1; i >= 0; i-- {
		rd := k.st.RootDecoders[i]
		k.remove(k.devAt(k.rootDecoderDev(rd).path))
		k.idaFree(rd.CachedID)
		rd.CachedID = -1
	}
	if !is61 {
		for _, m := range k.st.Memdevs {
			if m.Nvdimm {
				k.remove(k.devAt(k.nvdimmDev(m).path))
				m.Nvdimm = false
			}
		}
	}
	k.remove(k.devAt(rootPath))
	k.st.ACPIBound = false
	k.unbind(k.devAt(platformPath))
	if !is61 {
		k.unbindMemdevs()
	}
	return err
}

func (k *Kernel) unbindMemdevs() {
	for _, m := range k.st.Memdevs {
		if m.Bound {
			k.unbind(k.devAt(k.memdevDev(m).path))
			m.Bound = false
		}
	}
}

// portTeardown unregisters what a host bridge port's driver owns: its
// endpoints (their decoders first), then its own decoders, then the
// port's unbind; with remove the port itself goes too.
func (k *Kernel) portTeardown(p *portState, remove bool) {
	pd := k.devAt(k.portPath(p))
	if p.Bound {
		eps := k.endpointsBelow(p)
		slices.Reverse(eps)
		for _, ep := range eps {
			if !ep.Present {
				continue
			}
			k.endpointDriverRelease(ep)
			k.remove(k.devAt(k.portPath(ep)))
			ep.Present = false
		}
		for i := len(k.st.Switch) - 1; i >= 0; i-- {
			sd := k.st.Switch[i]
			if sd.Port != p.Name {
				continue
			}
			k.remove(k.devAt(k.switchDecDev(sd).path))
			*sd = switchDecState{Name: sd.Name, Port: sd.Port, Index: sd.Index, Ways: 1, Gran: k.switchIdleGranularity()}
		}
		p.CommitEnd = -1
		k.unbind(pd)
		p.Bound = false
	}
	if remove {
		k.remove(pd)
		p.Present = false
	}
}

func (k *Kernel) endpointsBelow(p *portState) []*portState {
	var out []*portState
	for _, ep := range k.st.Ports {
		if ep.endpoint() && ep.HB == p.HB {
			out = append(out, ep)
		}
	}
	return out
}

// endpointDriverRelease unbinds cxl_port from an endpoint: its decoders
// are unregistered (each first leaving its region, which keeps existing
// with fewer targets), DPA goes back to the device.
func (k *Kernel) endpointDriverRelease(ep *portState) {
	if !ep.Bound {
		return
	}
	for i := len(k.st.Endpoint) - 1; i >= 0; i-- {
		ed := k.st.Endpoint[i]
		if ed.Port != ep.Name {
			continue
		}
		if r := k.regionOf(ed); r != nil {
			for pos := 0; pos < maxTargets; pos++ {
				if r.Targets[pos] == ed.Name {
					_ = k.regionDetach(r, pos, []string{"cxl_decoder_kill_region+0x2b/0x60", "cxld_unregister+0x12/0x30"})
				}
			}
		}
		k.remove(k.devAt(k.epDecDev(ed).path))
		*ed = epDecState{Name: ed.Name, Port: ed.Port, Index: ed.Index, Memdev: ed.Memdev, Mode: "none", Ways: 1, Gran: 256}
	}
	ep.CommitEnd, ep.HdmEnd = -1, -1
	k.unbind(k.devAt(k.portPath(ep)))
	ep.Bound = false
}

// regionOf finds the region (live or being released) an endpoint decoder
// is attached to.
func (k *Kernel) regionOf(ed *epDecState) *regionState {
	if ed.Region == "" {
		return nil
	}
	return k.regions[ed.Region]
}

// portUnbindStore is unbind_store of the cxl_port driver.
func (k *Kernel) portUnbindStore(name string) error {
	d := k.busDev("cxl", name)
	if d == nil || d.driver != "cxl_port" {
		return unix.ENODEV
	}
	p := k.ports[name]
	if p.endpoint() {
		k.endpointDriverRelease(p)
		return nil
	}
	k.portTeardown(p, false)
	for _, ep := range k.endpointsBelow(p) {
		m := k.st.Memdevs[ep.Memdev]
		if m.Bound {
			k.unbind(k.devAt(k.memdevDev(m).path))
			m.Bound = false
		}
	}
	return nil
}

// acpiBindStore is bind_store of cxl_acpi: root0, the root decoders (each
// caching a fresh region id), the host bridge ports with their decoders
// and the nvdimm bridge come back at once; the endpoints come back after
// the rebind delay (the memdevs' cxl_mem probes). Regions do not come
// back.
func (k *Kernel) acpiBindStore(name string) error {
	if name != acpiName {
		return unix.ENODEV
	}
	if k.st.ACPIBound {
		return unix.EBUSY
	}
	k.emit("add", &device{kind: kindHidden, name: "wakeup8", path: wakeupPath, subsystem: "wakeup"})
	k.st.ACPIBound = true
	k.add(k.rootDev())
	for _, rd := range k.st.RootDecoders {
		rd.CachedID = k.idaAlloc()
		k.add(k.rootDecoderDev(rd))
	}
	for i := range k.st.Topology.HostBridges {
		p := k.st.Ports[i]
		p.Present, p.Bound, p.CommitEnd = true, true, -1
		pd := k.add(k.portDev(p))
		for _, sd := range k.st.Switch {
			if sd.Port == p.Name {
				k.add(k.switchDecDev(sd))
			}
		}
		k.bind(pd, "cxl_port")
	}
	if k.hasBridge() {
		br := k.add(bridgeDev())
		if k.st.Profile == Profile61 { // 06-acpi-rebind.txt: 6.1 binds the bridge first
			k.bind(br, "cxl_nvdimm_bridge")
		}
		bus := k.add(ndBusDev())
		k.add(ndCtlDev())
		k.bind(bus, "nd_bus")
		if k.st.Profile != Profile61 {
			k.bind(br, "cxl_nvdimm_bridge")
		}
	}
	k.bind(k.devAt(platformPath), "cxl_acpi")
	if k.st.Profile == Profile61 {
		// pmemN survived the unbind on 6.1 and binds again at once.
		for _, m := range k.st.Memdevs {
			if m.Nvdimm && !m.NvdimmBound && k.hasBridge() {
				k.nvdimmUp(m)
			}
		}
	}
	k.after(k.cfg.rebindDelay, k.endpointsUp)
	return nil
}

// endpointsUp re-enumerates the endpoints of every bound host bridge port
// (cxl_mem probing the memdevs again).
func (k *Kernel) endpointsUp() {
	if !k.st.ACPIBound {
		return
	}
	for _, ep := range k.st.Ports {
		if !ep.endpoint() || ep.Present || !k.st.Ports[ep.HB].Bound {
			continue
		}
		m := k.st.Memdevs[ep.Memdev]
		ep.Present, ep.Bound, ep.CommitEnd, ep.HdmEnd = true, true, -1, -1
		d := k.add(k.portDev(ep))
		for _, ed := range k.st.Endpoint {
			if ed.Port == ep.Name {
				k.add(k.epDecDev(ed))
			}
		}
		k.bind(d, "cxl_port")
		if !m.Bound {
			k.bind(k.devAt(k.memdevDev(m).path), "cxl_mem")
			m.Bound = true
		}
		if k.st.Topology.Memdevs[m.Index].PmemSize > 0 && k.hasBridge() && !m.NvdimmBound {
			if !m.Nvdimm {
				k.add(k.nvdimmDev(m))
				m.Nvdimm = true
			}
			k.nvdimmUp(m)
		}
	}
}

func (k *Kernel) nvdimmUp(m *memdevState) {
	nm := k.add(k.nmemDev(m))
	k.bind(nm, "nvdimm")
	k.bind(k.devAt(k.nvdimmDev(m).path), "cxl_nvdimm")
	m.NvdimmBound = true
}
