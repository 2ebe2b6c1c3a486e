package cxlsim

import (
	"cmp"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// The region's configuration stores, in the kernel's order of checks
// (drivers/cxl/core/region.c). All run with k.mu held, which stands for
// cxl_region_rwsem and cxl_dpa_rwsem.

func (k *Kernel) window(r *regionState) RootDecoder {
	return k.st.Topology.RootDecoders[k.rds[r.RootDecoder].Index]
}

func (k *Kernel) uuidStore(r *regionState, data []byte) error {
	if r.unregistered {
		return unix.ENODEV
	}
	if len(data) != 37 { // UUID_STRING_LEN + 1
		return unix.EINVAL
	}
	u, ok := parseUUID(string(data))
	if !ok || u == "00000000-0000-0000-0000-000000000000" {
		return unix.EINVAL
	}
	if u == r.UUID {
		return nil
	}
	if r.State >= stateActive {
		return unix.EBUSY
	}
	for _, o := range k.st.Regions { // is_dup over every cxl region
		if o != r && o.UUID == u {
			k.klog.kernel(fmt.Sprintf("cxl_region %s: already has uuid: %s", o.Name, u))
			return unix.EBUSY
		}
	}
	r.UUID = u
	return nil
}

func (k *Kernel) waysStore(r *regionState, data []byte) error {
	if r.unregistered {
		return unix.ENODEV
	}
	v, errno := kstrtouint(data)
	if errno != 0 {
		return errno
	}
	val := int(v)
	if _, ok := waysToEIW(val); !ok {
		return unix.EINVAL
	}
	rootWays := len(k.window(r).HostBridges)
	if q := val / rootWays; q&(q-1) != 0 || q == 0 || val%rootWays != 0 {
		return unix.EINVAL
	}
	if r.State >= stateInterleaveActive {
		return unix.EBUSY
	}
	r.Ways = val
	return nil
}

func (k *Kernel) granularityStore(r *regionState, data []byte) error {
	if r.unregistered {
		return unix.ENODEV
	}
	val, errno := kstrtoint(data)
	if errno != 0 {
		return errno
	}
	if !validGranularity(val) {
		return unix.EINVAL
	}
	w := k.window(r)
	if len(w.HostBridges) > 1 && val != w.Granularity {
		return unix.EINVAL
	}
	if r.State >= stateInterleaveActive {
		return unix.EBUSY
	}
	r.Gran = val
	return nil
}

func (k *Kernel) sizeStore(r *regionState, data []byte) error {
	if r.unregistered {
		return unix.ENODEV
	}
	val, errno := kstrtoull(data)
	if errno != 0 {
		return errno
	}
	if val == 0 {
		return k.freeHPA(r)
	}
	return k.allocHPA(r, val)
}

func (k *Kernel) allocHPA(r *regionState, size uint64) error {
	if r.Res != nil && r.Res.Size == size {
		return nil
	}
	if r.Res != nil || r.State >= stateInterleaveActive {
		return unix.EBUSY
	}
	if r.Ways == 0 || r.Gran == 0 || (r.Mode == "pmem" && r.UUID == "") {
		return unix.ENXIO
	}
	if size%(sz256M*uint64(r.Ways)) != 0 {
		return unix.EINVAL
	}
	start, ok := k.findFreeHPA(r.RootDecoder, size)
	if !ok {
		w := k.window(r)
		k.klog.kernel(fmt.Sprintf("cxl %s: HPA allocation error (-34) for size:%#018x in CXL Window %d [mem %#x-%#x flags 0x200]",
			r.Name, size, k.rds[r.RootDecoder].Index, uint64(w.Start), uint64(w.Start)+uint64(w.Size)-1))
		return unix.ERANGE
	}
	r.Res = &hpa{Start: start, Size: size}
	r.State = stateInterleaveActive
	return nil
}

// findFreeHPA is alloc_free_mem_region: the lowest 256 MiB aligned free
// range of the window.
func (k *Kernel) findFreeHPA(rootDecoder string, size uint64) (uint64, bool) {
	w := k.st.Topology.RootDecoders[k.rds[rootDecoder].Index]
	var used []hpa
	for _, o := range k.st.Regions {
		if o.RootDecoder != rootDecoder {
			continue
		}
		if o.Res != nil {
			used = append(used, *o.Res)
		}
		if o.AssemblyRes != nil && o.Res == nil {
			used = append(used, *o.AssemblyRes)
		}
	}
	slices.SortFunc(used, func(a, b hpa) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	used = append(used, k.leakedRanges()...)
	slices.SortFunc(used, func(a, b hpa) int { return cmp.Compare(a.Start, b.Start) })
	cur := uint64(w.Start)
	end := uint64(w.Start) + uint64(w.Size)
	for _, u := range used {
		if u.Start >= cur+size {
			break
		}
		if u.Start+u.Size > cur {
			cur = (u.Start + u.Size + sz256M - 1) &^ (sz256M - 1)
		}
	}
	if cur+size > end || cur+size < cur {
		return 0, false
	}
	return cur, true
}

func (k *Kernel) freeHPA(r *regionState) error {
	if r.Res == nil {
		return nil
	}
	if r.State >= stateActive {
		return unix.EBUSY
	}
	r.Res = nil
	r.State = stateIdle
	return nil
}

// targetStore is store_targetN: a decoder name attaches, an empty line
// detaches.
func (k *Kernel) targetStore(r *regionState, pos int, data []byte) error {
	if r.unregistered {
		return unix.ENODEV
	}
	name := trimNL(data)
	if name == "" {
		return k.detachTarget(r, pos, []string{"detach_target+0x2a/0x60", "store_targetN+0x3c/0x90"})
	}
	d := k.busDev("cxl", name)
	if d == nil {
		return unix.ENODEV
	}
	if d.kind != kindEndpointDecoder {
		return unix.EINVAL
	}
	return k.attachTarget(r, k.eds[name], pos)
}

// attachTarget is cxl_region_attach.
func (k *Kernel) attachTarget(r *regionState, ed *epDecState, pos int) error {
	if ed.Mode != r.Mode {
		return unix.EINVAL
	}
	switch {
	case r.State > stateInterleaveActive:
		k.klog.kernel("cxl " + r.Name + ": region already active")
		return unix.EBUSY
	case r.State < stateInterleaveActive:
		k.klog.kernel("cxl " + r.Name + ": interleave config missing")
		return unix.ENXIO
	}
	if r.NrTargets >= r.Ways {
		return unix.EINVAL
	}
	w := k.window(r)
	hb := k.st.Topology.Memdevs[ed.Memdev].HostBridge
	if !slices.Contains(w.HostBridges, hb) {
		return unix.ENXIO
	}
	mem := k.st.Memdevs[ed.Memdev].Name
	if ed.DPA == nil {
		k.klog.kernel(fmt.Sprintf("cxl %s: %s:%s: missing DPA allocation.", r.Name, mem, ed.Name))
		return unix.ENXIO
	}
	if ed.DPA.Size*uint64(r.Ways) != r.Res.Size {
		return unix.EINVAL
	}
	// cxl_region_validate_position
	if pos >= r.Ways {
		return unix.ENXIO
	}
	if r.Targets[pos] != "" {
		return unix.EBUSY // occupied, or this very decoder (cxl_rr_ep_add: EBUSY)
	}
	for i := 0; i < r.Ways; i++ {
		if t := k.eds[r.Targets[i]]; t != nil && t.Memdev == ed.Memdev {
			return unix.EBUSY
		}
	}
	// cxl_region_attach_position: the bridge must be the root decoder's
	// target at pos % root ways.
	if w.HostBridges[pos%len(w.HostBridges)] != hb {
		return unix.ENXIO
	}
	// cxl_port_attach_region, endpoint port then host bridge port.
	if ed.Region != "" {
		return unix.EBUSY
	}
	ep := k.ports[ed.Port]
	hbPort := k.st.Ports[hb]
	for _, p := range []*portState{ep, hbPort} {
		if k.hpaOrderViolation(p, r) {
			return unix.EBUSY
		}
	}
	sd := k.switchDecoderFor(hbPort, r)
	if sd == nil {
		return unix.EBUSY
	}
	sd.Region = r.Name
	ed.Region = r.Name
	r.Targets[pos] = ed.Name
	r.NrTargets++
	ed.Ways, ed.Gran = r.Ways, r.Gran
	ed.Start, ed.Size = r.Res.Start, r.Res.Size
	if r.NrTargets == r.Ways {
		k.setupTargets(r)
		r.State = stateActive
	}
	return nil
}

// hpaOrderViolation: a port may only map regions in increasing HPA order.
func (k *Kernel) hpaOrderViolation(p *portState, r *regionState) bool {
	for _, o := range k.st.Regions {
		if o == r || o.Res == nil || o.Res.Start < r.Res.Start {
			continue
		}
		if k.regionUsesPort(o, p) {
			k.klog.kernel(fmt.Sprintf("cxl %s: %s: HPA order violation %s", r.Name, p.Name, o.Name))
			return true
		}
	}
	return false
}

func (k *Kernel) regionUsesPort(r *regionState, p *portState) bool {
	for i := 0; i < maxTargets; i++ {
		ed := k.eds[r.Targets[i]]
		if ed == nil {
			continue
		}
		if ed.Port == p.Name || (!p.endpoint() && k.st.Topology.Memdevs[ed.Memdev].HostBridge == p.HB) {
			return true
		}
	}
	return false
}

// switchDecoderFor returns the host bridge decoder the region uses on the
// port: its existing one, or the one match_free_decoder picks. 6.1 takes
// the lowest decoder without a region (an out-of-order one then fails at
// commit); 6.12 takes only commit_end + 1, and only when every decoder
// below it is still committed ("out of order shutdown": the attach fails).
func (k *Kernel) switchDecoderFor(p *portState, r *regionState) *switchDecState {
	for _, sd := range k.st.Switch {
		if sd.Port == p.Name && sd.Region == r.Name {
			return sd
		}
	}
	if k.st.Profile == Profile61 {
		for _, sd := range k.st.Switch {
			if sd.Port == p.Name && sd.Region == "" && !sd.Enabled {
				return sd
			}
		}
		return nil
	}
	var next *switchDecState
	for _, sd := range k.st.Switch {
		if sd.Port == p.Name && sd.Index == p.CommitEnd+1 {
			next = sd
		}
	}
	if next == nil || next.Region != "" {
		return nil
	}
	for _, sd := range k.st.Switch {
		if sd.Port == p.Name && sd.Index < next.Index && !sd.Enabled {
			k.klog.kernel(fmt.Sprintf("cxl_port %s: unable to allocate decoder%s.%d due to out of order shutdown of decoder%s.%d",
				p.Name, portNumber(p.Name), next.Index, portNumber(p.Name), sd.Index))
			return nil
		}
	}
	return next
}

// setupTargets programs the host bridge decoders of a complete region
// (cxl_region_setup_targets): range, ways = the region's root ports below
// the bridge, granularity.
func (k *Kernel) setupTargets(r *regionState) {
	for _, sd := range k.st.Switch {
		if sd.Region != r.Name {
			continue
		}
		hb := k.ports[sd.Port].HB
		rps := map[int]bool{}
		for i := 0; i < r.Ways; i++ {
			if ed := k.eds[r.Targets[i]]; ed != nil && k.st.Topology.Memdevs[ed.Memdev].HostBridge == hb {
				rps[k.rootPortIndex(ed.Memdev)] = true
			}
		}
		sd.Start, sd.Size = r.Res.Start, r.Res.Size
		sd.Ways = max(len(rps), 1)
		sd.Gran = r.Gran
	}
}

// detachTarget is detach_target.
func (k *Kernel) detachTarget(r *regionState, pos int, trace []string) error {
	if pos >= r.Ways {
		return unix.ENXIO
	}
	if r.Targets[pos] == "" {
		return nil
	}
	return k.regionDetach(r, pos, trace)
}

// regionDetach is cxl_region_detach of the decoder at pos: decode reset
// when committed, then the target leaves and the region driver is
// released.
func (k *Kernel) regionDetach(r *regionState, pos int, trace []string) error {
	ed := k.eds[r.Targets[pos]]
	if r.State > stateActive {
		k.decodeReset(r)
		r.State = stateActive
	}
	if r.State == stateActive {
		r.State = stateInterleaveActive
	}
	r.Targets[pos] = ""
	r.NrTargets--
	ed.Region = ""
	ed.Start, ed.Size = 0, 0
	hb := k.st.Topology.Memdevs[ed.Memdev].HostBridge
	still := false
	for i := 0; i < maxTargets; i++ {
		if o := k.eds[r.Targets[i]]; o != nil && k.st.Topology.Memdevs[o.Memdev].HostBridge == hb {
			still = true
		}
	}
	if !still {
		for _, sd := range k.st.Switch {
			if sd.Region == r.Name && k.ports[sd.Port].HB == hb {
				sd.Region = "" // the programmed range stays, as the captures show
			}
		}
	}
	return k.releaseRegionDriver(r, append([]string{"device_release_driver+0x12/0x20", "cxl_region_detach+0x1a5/0x240"}, trace...))
}

// commitStore is commit_store.
func (k *Kernel) commitStore(r *regionState, data []byte) error {
	if r.unregistered {
		return unix.ENODEV
	}
	commit, errno := kstrtobool(data)
	if errno != 0 {
		return errno
	}
	if commit && r.State >= stateCommit || !commit && r.State < stateCommit {
		return nil
	}
	if commit && r.State < stateActive {
		return unix.ENXIO
	}
	if k.st.Profile != Profile61 && k.cfg.hypervisor {
		k.warnCacheSync(r.Name)
		return unix.ENXIO
	}
	if commit {
		if err := k.decodeCommit(r); err != nil {
			return err
		}
		r.State = stateCommit
		return nil
	}
	r.State = stateResetPending
	err := k.releaseRegionDriver(r, []string{"device_release_driver+0x12/0x20", "commit_store+0x1b0/0x370"})
	if r.State == stateResetPending {
		k.decodeReset(r)
		r.State = stateActive
	}
	return err
}

// decodeCommit commits every target's decoders bottom-up (endpoint, then
// host bridge); a decoder must be its port's next in id order.
func (k *Kernel) decodeCommit(r *regionState) error {
	for i := 0; i < r.NrTargets; i++ {
		ed := k.eds[r.Targets[i]]
		if ed == nil {
			continue
		}
		ep := k.ports[ed.Port]
		if err := k.commitDecoder(ep, ed.Index, &ed.Enabled); err != nil {
			k.decodeReset(r)
			return err
		}
		sd := k.switchDecoderFor(k.st.Ports[ep.HB], r)
		if err := k.commitDecoder(k.st.Ports[ep.HB], sd.Index, &sd.Enabled); err != nil {
			k.decodeReset(r)
			return err
		}
	}
	return nil
}

func (k *Kernel) commitDecoder(p *portState, id int, enabled *bool) error {
	if *enabled {
		return nil
	}
	if p.CommitEnd+1 != id {
		k.klog.kernel(fmt.Sprintf("cxl_port %s: out of order commit, expected decoder%s.%d", p.Name, portNumber(p.Name), p.CommitEnd+1))
		return unix.EBUSY
	}
	p.CommitEnd++
	*enabled = true
	return nil
}

func portNumber(name string) string {
	for i := range name {
		if name[i] >= '0' && name[i] <= '9' {
			return name[i:]
		}
	}
	return name
}

// decodeReset resets the region's decoders top-down in reverse target
// order. Resetting a decoder that is not its port's highest committed one
// disables it and leaves commit_end pinned until the higher ones go
// (cxl_port_commit_reap).
func (k *Kernel) decodeReset(r *regionState) {
	k.memoryUndecoded(r)
	for i := maxTargets - 1; i >= 0; i-- {
		ed := k.eds[r.Targets[i]]
		if ed == nil {
			continue
		}
		ep := k.ports[ed.Port]
		hbPort := k.st.Ports[ep.HB]
		for _, sd := range k.st.Switch {
			if sd.Port == hbPort.Name && sd.Region == r.Name && sd.Enabled {
				k.resetDecoder(hbPort, sd.Index, &sd.Enabled)
			}
		}
		if ed.Enabled {
			k.resetDecoder(ep, ed.Index, &ed.Enabled)
		}
	}
}

func (k *Kernel) resetDecoder(p *portState, id int, enabled *bool) {
	*enabled = false
	if p.CommitEnd != id {
		return
	}
	p.CommitEnd--
	for p.CommitEnd >= 0 && !k.decoderEnabled(p, p.CommitEnd) {
		p.CommitEnd--
	}
	k.klog.kernel(fmt.Sprintf("cxl_port %s: reap: decoder%s.%d commit_end: %d", p.Name, portNumber(p.Name), id, p.CommitEnd))
}

func (k *Kernel) decoderEnabled(p *portState, id int) bool {
	if p.endpoint() {
		for _, ed := range k.st.Endpoint {
			if ed.Port == p.Name && ed.Index == id {
				return ed.Enabled
			}
		}
		return false
	}
	for _, sd := range k.st.Switch {
		if sd.Port == p.Name && sd.Index == id {
			return sd.Enabled
		}
	}
	return false
}
