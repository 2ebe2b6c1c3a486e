package cxlsim

import (
	"fmt"
	"strconv"
	"strings"
)

// view returns a device's attributes and links (k.mu held), exactly those
// the captures show for its type on the kernel profile in its current
// state. Links map to absolute sysfs paths.
func (k *Kernel) view(d *device) ([]attr, map[string]string) {
	is612 := k.st.Profile != Profile61
	links := map[string]string{}
	if d.driver != "" {
		links["driver"] = "bus/" + d.bus + "/drivers/" + d.driver
	}
	var as []attr
	ro := func(name string, f func() string) { as = append(as, attr{name: name, mode: 0o444, show: f}) }
	static := func(name, v string) { ro(name, func() string { return v + "\n" }) }
	uev := func(extra ...string) {
		ro("uevent", func() string {
			var b strings.Builder
			for _, e := range extra {
				b.WriteString(e + "\n")
			}
			if d.devtype != "" {
				b.WriteString("DEVTYPE=" + d.devtype + "\n")
			}
			if d.driver != "" {
				b.WriteString("DRIVER=" + d.driver + "\n")
			}
			if d.modalias != "" {
				b.WriteString("MODALIAS=" + d.modalias + "\n")
			}
			return b.String()
		})
		as[len(as)-1].mode = 0o644
	}
	cxlCommon := func() {
		if d.kind != kindMemdev { // memdevs have neither file (captures)
			static("devtype", d.devtype)
			static("modalias", d.modalias)
		}
		links["subsystem"] = "bus/cxl"
	}
	switch d.kind {
	case kindPlatform:
		links["subsystem"] = "bus/platform"
		static("modalias", "acpi:ACPI0017:")
		uev()
	case kindRoot:
		cxlCommon()
		uev()
		links["uport"] = platformPath
		if is612 {
			static("decoders_committed", "0")
		}
		for i, hb := range k.st.Topology.HostBridges {
			links[fmt.Sprintf("dport%d", hb.UID)] = k.hbUportPath(i)
		}
	case kindRootDecoder:
		cxlCommon()
		uev()
		k.rootDecoderAttrs(d, &as)
	case kindPort, kindEndpoint:
		cxlCommon()
		uev()
		p := k.ports[d.ref]
		if is612 {
			ro("decoders_committed", func() string { return strconv.Itoa(p.CommitEnd+1) + "\n" })
		}
		if p.endpoint() {
			links["uport"] = k.memdevPath(p.Memdev)
			if is612 {
				links["parent_dport"] = k.rootPortPath(p.Memdev)
			}
		} else {
			links["uport"] = k.hbUportPath(p.HB)
			if is612 {
				links["parent_dport"] = k.hbUportPath(p.HB)
			}
			if p.Bound {
				for m, md := range k.st.Topology.Memdevs {
					if md.HostBridge == p.HB {
						links[fmt.Sprintf("dport%d", k.rootPortIndex(m))] = k.rootPortPath(m)
					}
				}
			}
		}
	case kindSwitchDecoder:
		cxlCommon()
		uev()
		k.switchDecoderAttrs(k.sds[d.ref], &as)
	case kindEndpointDecoder:
		cxlCommon()
		uev()
		k.endpointDecoderAttrs(k.eds[d.ref], &as)
	case kindMemdev:
		m := k.mems[d.ref]
		cxlCommon()
		major := 250
		if !is612 {
			major = 247
		}
		uev(fmt.Sprintf("MAJOR=%d", major), fmt.Sprintf("MINOR=%d", m.Index), fmt.Sprintf("DEVNAME=cxl/%s", m.Name))
		spec := k.st.Topology.Memdevs[m.Index]
		static("dev", fmt.Sprintf("%d:%d", major, m.Index))
		static("firmware_version", "BWFW VERSION 00")
		static("label_storage_size", "268435456")
		static("numa_node", "-1")
		static("payload_max", "2048")
		static("pmem/size", fmt.Sprintf("%#x", uint64(spec.PmemSize)))
		static("ram/size", fmt.Sprintf("%#x", uint64(spec.RAMSize)))
		if is612 {
			static("security/state", "disabled")
		}
		static("serial", fmt.Sprintf("%#x", spec.Serial))
	case kindNvdimm, kindBridge, kindPmemRegion, kindDaxRegion:
		cxlCommon()
		uev()
	case kindRegion:
		cxlCommon()
		uev()
		k.regionAttrs(k.regions[d.ref], &as)
	case kindMemoryRoot, kindMemBlock:
		k.memoryAttrs(d, &as, links)
		if d.kind == kindMemBlock {
			uev()
		}
	case kindNdBus, kindNdCtl, kindNmem, kindNdRegion, kindNdSeed, kindDaxDev:
		if d.kind == kindDaxDev {
			if r := k.regions[d.ref]; r != nil && r.Res != nil {
				node := k.regionNode(r)
				size := r.Res.Size
				ro("target_node", func() string { return strconv.Itoa(node) + "\n" })
				ro("size", func() string { return strconv.FormatUint(size, 10) + "\n" })
			}
		}
		links["subsystem"] = "bus/" + d.subsystem
		if d.kind == kindNdCtl {
			links["subsystem"] = "class/nd"
		}
		if d.modalias != "" {
			static("modalias", d.modalias)
		}
		if d.devtype != "" {
			static("devtype", d.devtype)
		}
		uev()
	}
	return as, links
}

func hex(v uint64) string { return fmt.Sprintf("%#x\n", v) }

func (k *Kernel) rootDecoderAttrs(d *device, as *[]attr) {
	rd := k.rds[d.ref]
	w := k.st.Topology.RootDecoders[rd.Index]
	ro := func(name string, f func() string) { *as = append(*as, attr{name: name, mode: 0o444, show: f}) }
	b := func(v bool) func() string {
		return func() string {
			if v {
				return "1\n"
			}
			return "0\n"
		}
	}
	ro("cap_pmem", b(w.Pmem))
	ro("cap_ram", b(w.RAM))
	ro("cap_type2", b(w.Type2))
	ro("cap_type3", b(true))
	ro("interleave_granularity", func() string { return strconv.Itoa(w.Granularity) + "\n" })
	ro("interleave_ways", func() string { return strconv.Itoa(len(w.HostBridges)) + "\n" })
	ro("locked", b(w.Locked))
	ro("size", func() string { return hex(uint64(w.Size)) })
	*as = append(*as, attr{name: "start", mode: 0o400, show: func() string { return hex(uint64(w.Start)) }})
	ro("target_list", func() string {
		ids := make([]string, len(w.HostBridges))
		for i, hb := range w.HostBridges {
			ids[i] = strconv.Itoa(k.st.Topology.HostBridges[hb].UID)
		}
		return strings.Join(ids, ",") + "\n"
	})
	if k.st.Profile != Profile61 {
		ro("qos_class", func() string { return strconv.Itoa(w.QoSClass) + "\n" })
	}
	name := func() string { return fmt.Sprintf("region%d\n", rd.CachedID) }
	if w.Pmem {
		*as = append(*as, attr{name: "create_pmem_region", mode: 0o644, show: name,
			store: func(data []byte) error { return k.createRegionStore(rd, "pmem", data) }})
	}
	if w.RAM && k.st.Profile != Profile61 {
		*as = append(*as, attr{name: "create_ram_region", mode: 0o644, show: name,
			store: func(data []byte) error { return k.createRegionStore(rd, "ram", data) }})
	}
	if w.Pmem || (w.RAM && k.st.Profile != Profile61) {
		*as = append(*as, attr{name: "delete_region", mode: 0o200,
			store: func(data []byte) error { return k.deleteRegionStore(rd, data) }})
	}
}

func (k *Kernel) switchDecoderAttrs(sd *switchDecState, as *[]attr) {
	ro := func(name string, f func() string) { *as = append(*as, attr{name: name, mode: 0o444, show: f}) }
	ro("interleave_granularity", func() string { return strconv.Itoa(sd.Gran) + "\n" })
	ro("interleave_ways", func() string { return strconv.Itoa(sd.Ways) + "\n" })
	ro("locked", func() string { return "0\n" })
	ro("region", func() string { return sd.Region + "\n" })
	ro("size", func() string { return hex(sd.Size) })
	*as = append(*as, attr{name: "start", mode: 0o400, show: func() string { return hex(sd.Start) }})
	ro("target_list", func() string { return k.switchTargetList(sd) + "\n" })
	ro("target_type", func() string { return "expander\n" })
}

// switchTargetList shows the root ports a host bridge decoder routes to:
// all of the bridge's when idle, the region's in position order when
// programmed.
func (k *Kernel) switchTargetList(sd *switchDecState) string {
	p := k.ports[sd.Port]
	var ids []string
	if r := k.regions[sd.Region]; r != nil {
		seen := map[int]bool{}
		for i := 0; i < r.Ways; i++ {
			ed := k.eds[r.Targets[i]]
			if ed == nil || k.st.Topology.Memdevs[ed.Memdev].HostBridge != p.HB {
				continue
			}
			rp := k.rootPortIndex(ed.Memdev)
			if !seen[rp] {
				seen[rp] = true
				ids = append(ids, strconv.Itoa(rp))
			}
		}
		if len(ids) > 0 {
			return strings.Join(ids, ",")
		}
	}
	for m, md := range k.st.Topology.Memdevs {
		if md.HostBridge == p.HB {
			ids = append(ids, strconv.Itoa(k.rootPortIndex(m)))
		}
	}
	return strings.Join(ids, ",")
}

func (k *Kernel) endpointDecoderAttrs(ed *epDecState, as *[]attr) {
	ro := func(name string, f func() string) { *as = append(*as, attr{name: name, mode: 0o444, show: f}) }
	ro("dpa_resource", func() string {
		if ed.DPA == nil {
			return hex(^uint64(0))
		}
		return hex(ed.DPA.Start)
	})
	*as = append(*as, attr{name: "dpa_size", mode: 0o644,
		show: func() string {
			var n uint64
			if ed.DPA != nil {
				n = ed.DPA.Size
			}
			return fmt.Sprintf("0x%016x\n", n)
		},
		store: func(data []byte) error { return k.dpaSizeStore(ed, data) }})
	ro("interleave_granularity", func() string { return strconv.Itoa(ed.Gran) + "\n" })
	ro("interleave_ways", func() string { return strconv.Itoa(ed.Ways) + "\n" })
	ro("locked", func() string { return "0\n" })
	*as = append(*as, attr{name: "mode", mode: 0o644,
		show:  func() string { return ed.Mode + "\n" },
		store: func(data []byte) error { return k.modeStore(ed, data) }})
	ro("region", func() string { return ed.Region + "\n" })
	ro("size", func() string { return hex(ed.Size) })
	*as = append(*as, attr{name: "start", mode: 0o400, show: func() string { return hex(ed.Start) }})
	ro("target_type", func() string { return "expander\n" })
}

func (k *Kernel) regionAttrs(r *regionState, as *[]attr) {
	rw := func(name string, show func() string, store func([]byte) error) {
		*as = append(*as, attr{name: name, mode: 0o644, show: show, store: store})
	}
	ro := func(name string, f func() string) { *as = append(*as, attr{name: name, mode: 0o444, show: f}) }
	rw("commit", func() string {
		if r.State >= stateCommit {
			return "1\n"
		}
		return "0\n"
	}, func(b []byte) error { return k.commitStore(r, b) })
	rw("interleave_granularity", func() string { return strconv.Itoa(r.Gran) + "\n" },
		func(b []byte) error { return k.granularityStore(r, b) })
	rw("interleave_ways", func() string { return strconv.Itoa(r.Ways) + "\n" },
		func(b []byte) error { return k.waysStore(r, b) })
	if k.st.Profile != Profile61 {
		ro("mode", func() string { return r.Mode + "\n" })
	}
	ro("resource", func() string {
		if r.Res == nil {
			return hex(^uint64(0))
		}
		return hex(r.Res.Start)
	})
	rw("size", func() string {
		if r.Res == nil {
			return "0x0\n"
		}
		return hex(r.Res.Size)
	}, func(b []byte) error { return k.sizeStore(r, b) })
	for i := 0; i < r.Ways && i < maxTargets; i++ {
		pos := i
		rw(fmt.Sprintf("target%d", i), func() string { return r.Targets[pos] + "\n" },
			func(b []byte) error { return k.targetStore(r, pos, b) })
	}
	switch {
	case r.Mode == "pmem":
		rw("uuid", func() string { return uuidOrNull(r.UUID) + "\n" }, func(b []byte) error { return k.uuidStore(r, b) })
	case k.st.Profile != Profile61:
		ro("uuid", func() string { return "\n" })
	}
}

func uuidOrNull(u string) string {
	if u == "" {
		return "00000000-0000-0000-0000-000000000000"
	}
	return u
}
