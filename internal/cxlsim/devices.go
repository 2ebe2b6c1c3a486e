package cxlsim

import (
	"fmt"
	"path"
	"sort"

	"github.com/cxlregion/cxlregiond/internal/uevent"
)

// device is one kobject the model registered: what sysfs shows as a
// directory and what uevents name. Its behaviour comes from the state
// object named by ref.
type device struct {
	kind      devKind
	name      string
	path      string // sysfs path of the directory, e.g. devices/platform/ACPI0017:00/root0
	subsystem string // uevent SUBSYSTEM
	bus       string // bus it is listed on (bus/<bus>/devices), "" for class devices
	devtype   string
	modalias  string
	driver    string
	ref       string // state object: decoder, port, memdev or region name
	ino       uint64 // inode number of the directory, set by register
}

type devKind int

const (
	kindPlatform devKind = iota
	kindRoot
	kindRootDecoder
	kindPort
	kindEndpoint
	kindSwitchDecoder
	kindEndpointDecoder
	kindMemdev
	kindNvdimm
	kindBridge
	kindNdBus
	kindNdCtl
	kindNmem
	kindRegion
	kindPmemRegion
	kindDaxRegion
	kindNdRegion
	kindNdSeed
	kindDaxDev
	kindMemoryRoot // devices/system/memory
	kindMemBlock   // devices/system/memory/memoryN
	kindHidden     // consumes a SEQNUM, never listed (wakeup, firmware)
)

const (
	acpiName     = "ACPI0017:00"
	platformPath = "devices/platform/" + acpiName
	rootPath     = platformPath + "/root0"
	bridgePath   = rootPath + "/nvdimm-bridge0"
	ndBusPath    = bridgePath + "/ndbus0"
	wakeupPath   = "devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0017:00/wakeup/wakeup8"
)

// register adds d to the tree without an event (boot, load).
func (k *Kernel) register(d *device) *device {
	if d.ino == 0 {
		k.lastIno++
		d.ino = k.lastIno
	}
	k.devs[d.path] = d
	parent := path.Dir(d.path)
	if k.kids[parent] == nil {
		k.kids[parent] = map[string]*device{}
	}
	k.kids[parent][d.path] = d
	if d.bus != "" {
		if k.bus[d.bus] == nil {
			k.bus[d.bus] = map[string]*device{}
		}
		k.bus[d.bus][d.name] = d
	}
	return d
}

func (k *Kernel) unregister(d *device) {
	delete(k.devs, d.path)
	if parent := path.Dir(d.path); k.kids[parent][d.path] == d {
		delete(k.kids[parent], d.path)
	}
	if d.bus != "" && k.bus[d.bus][d.name] == d {
		delete(k.bus[d.bus], d.name)
	}
}

// add registers d and sends its add uevent (device_add).
func (k *Kernel) add(d *device) *device {
	if d.kind != kindHidden {
		k.register(d)
	}
	k.emit(uevent.Add, d)
	return d
}

// remove sends d's remove uevent and drops it from the tree (device_del).
func (k *Kernel) remove(d *device) {
	if d == nil {
		return
	}
	k.unregister(d)
	k.emit(uevent.Remove, d)
}

// bind attaches a driver and sends the bind uevent (DRIVER= set).
func (k *Kernel) bind(d *device, drv string) {
	d.driver = drv
	k.emit(uevent.Bind, d)
}

// unbind detaches the driver and sends the unbind uevent, which carries no
// DRIVER: the driver core clears it first.
func (k *Kernel) unbind(d *device) {
	if d == nil || d.driver == "" {
		return
	}
	d.driver = ""
	k.emit(uevent.Unbind, d)
}

func (k *Kernel) devAt(p string) *device { return k.devs[p] }

func (k *Kernel) busDev(bus, name string) *device { return k.bus[bus][name] }

// children lists the devices registered directly below d, sorted by name.
func (k *Kernel) children(p string) []*device {
	var out []*device
	for _, d := range k.kids[p] {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Paths of the PCI side of the topology (QEMU layout: each memdev behind
// its own root port, bus numbers following the host bridge's).

func (k *Kernel) hbPCIPath(hb int) string {
	return fmt.Sprintf("devices/pci0000:%02x", k.st.Topology.HostBridges[hb].UID)
}

// hbUportPath is the host bridge device a port's uport points to: the PCI
// root bus on 6.12, the ACPI0016 companion on 6.1.
func (k *Kernel) hbUportPath(hb int) string {
	if k.st.Profile == Profile61 {
		return fmt.Sprintf("devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0016:%02d", hb)
	}
	return k.hbPCIPath(hb)
}

// rootPortIndex is the memdev's position among the memdevs of its bridge:
// its root port number and dport id.
func (k *Kernel) rootPortIndex(mem int) int {
	hb := k.st.Topology.Memdevs[mem].HostBridge
	n := 0
	for i := 0; i < mem; i++ {
		if k.st.Topology.Memdevs[i].HostBridge == hb {
			n++
		}
	}
	return n
}

func (k *Kernel) rootPortPath(mem int) string {
	hb := k.st.Topology.Memdevs[mem].HostBridge
	uid := k.st.Topology.HostBridges[hb].UID
	return fmt.Sprintf("%s/0000:%02x:%02x.0", k.hbPCIPath(hb), uid, k.rootPortIndex(mem))
}

func (k *Kernel) memdevPath(mem int) string {
	hb := k.st.Topology.Memdevs[mem].HostBridge
	uid := k.st.Topology.HostBridges[hb].UID
	return fmt.Sprintf("%s/0000:%02x:00.0/mem%d", k.rootPortPath(mem), uid+1+k.rootPortIndex(mem), mem)
}

func portName(hb int) string { return fmt.Sprintf("port%d", hb+1) }

func (k *Kernel) portPath(p *portState) string {
	if p.endpoint() {
		return rootPath + "/" + portName(p.HB) + "/" + p.Name
	}
	return rootPath + "/" + p.Name
}

// nmemName is the nd bus name of memdev mem's nvdimm: nmem ids count the
// pmem-capable memdevs.
func (k *Kernel) nmemName(mem int) string {
	n := 0
	for i := 0; i < mem; i++ {
		if k.st.Topology.Memdevs[i].PmemSize > 0 {
			n++
		}
	}
	return fmt.Sprintf("nmem%d", n)
}

func (k *Kernel) hasBridge() bool {
	for _, w := range k.st.Topology.RootDecoders {
		if w.Pmem {
			return true
		}
	}
	return false
}

// Constructors of the device records, one per kind.

func newPlatform() *device {
	return &device{kind: kindPlatform, name: acpiName, path: platformPath, subsystem: "platform", bus: "platform"}
}

func newCXL(kind devKind, name, p, devtype, modalias, ref string) *device {
	return &device{kind: kind, name: name, path: p, subsystem: "cxl", bus: "cxl", devtype: devtype, modalias: modalias, ref: ref}
}

func (k *Kernel) rootDev() *device {
	return newCXL(kindRoot, "root0", rootPath, "cxl_port", "cxl:t4", "root0")
}

func (k *Kernel) rootDecoderDev(rd *rootDecoderState) *device {
	return newCXL(kindRootDecoder, rd.Name, rootPath+"/"+rd.Name, "cxl_decoder_root", "cxl:t0", rd.Name)
}

func (k *Kernel) portDev(p *portState) *device {
	kind := kindPort
	if p.endpoint() {
		kind = kindEndpoint
	}
	return newCXL(kind, p.Name, k.portPath(p), "cxl_port", "cxl:t3", p.Name)
}

func (k *Kernel) switchDecDev(sd *switchDecState) *device {
	return newCXL(kindSwitchDecoder, sd.Name, k.portPath(k.ports[sd.Port])+"/"+sd.Name, "cxl_decoder_switch", "cxl:t0", sd.Name)
}

func (k *Kernel) epDecDev(ed *epDecState) *device {
	return newCXL(kindEndpointDecoder, ed.Name, k.portPath(k.ports[ed.Port])+"/"+ed.Name, "cxl_decoder_endpoint", "cxl:t0", ed.Name)
}

func (k *Kernel) memdevDev(m *memdevState) *device {
	return newCXL(kindMemdev, m.Name, k.memdevPath(m.Index), "cxl_memdev", "cxl:t5", m.Name)
}

func (k *Kernel) nvdimmDev(m *memdevState) *device {
	return newCXL(kindNvdimm, fmt.Sprintf("pmem%d", m.Index), k.memdevPath(m.Index)+fmt.Sprintf("/pmem%d", m.Index), "cxl_nvdimm", "cxl:t2", m.Name)
}

func bridgeDev() *device {
	return newCXL(kindBridge, "nvdimm-bridge0", bridgePath, "cxl_nvdimm_bridge", "cxl:t1", "")
}

func ndBusDev() *device {
	return &device{kind: kindNdBus, name: "ndbus0", path: ndBusPath, subsystem: "nd", bus: "nd"}
}

func ndCtlDev() *device {
	return &device{kind: kindNdCtl, name: "ndctl0", path: ndBusPath + "/nd/ndctl0", subsystem: "nd"}
}

func (k *Kernel) nmemDev(m *memdevState) *device {
	name := k.nmemName(m.Index)
	return &device{kind: kindNmem, name: name, path: ndBusPath + "/" + name, subsystem: "nd", bus: "nd", devtype: "nvdimm", modalias: "nd:t1", ref: m.Name}
}

func (k *Kernel) regionPath(r *regionState) string {
	return rootPath + "/" + r.RootDecoder + "/" + r.Name
}

func (k *Kernel) regionDev(r *regionState) *device {
	return newCXL(kindRegion, r.Name, k.regionPath(r), "cxl_region", "cxl:t6", r.Name)
}

func (k *Kernel) pmemRegionDev(r *regionState) *device {
	name := fmt.Sprintf("pmem_region%d", r.ID)
	return newCXL(kindPmemRegion, name, k.regionPath(r)+"/"+name, "cxl_pmem_region", "cxl:t7", r.Name)
}

func (k *Kernel) daxRegionDev(r *regionState) *device {
	name := fmt.Sprintf("dax_region%d", r.ID)
	return newCXL(kindDaxRegion, name, k.regionPath(r)+"/"+name, "cxl_dax_region", "cxl:t8", r.Name)
}

func (k *Kernel) daxDev(r *regionState) *device {
	name := fmt.Sprintf("dax%d.0", r.ID)
	return &device{kind: kindDaxDev, name: name, path: k.regionPath(r) + fmt.Sprintf("/dax_region%d/%s", r.ID, name), subsystem: "dax", bus: "dax", ref: r.Name}
}

func ndRegionDev(r *regionState) *device {
	return &device{kind: kindNdRegion, name: r.Name, path: ndBusPath + "/" + r.Name, subsystem: "nd", bus: "nd", devtype: "nd_pmem", modalias: "nd:t2", ref: r.Name}
}

// ndSeeds are the namespace, btt, pfn and dax seed devices libnvdimm adds
// below a new nd region, in the order the captures show their add events.
func ndSeeds(r *regionState) []*device {
	base := ndBusPath + "/" + r.Name
	mk := func(prefix, devtype, modalias string) *device {
		name := fmt.Sprintf("%s%d.0", prefix, r.ID)
		return &device{kind: kindNdSeed, name: name, path: base + "/" + name, subsystem: "nd", bus: "nd", devtype: devtype, modalias: modalias, ref: r.Name}
	}
	return []*device{
		mk("namespace", "nd_namespace_pmem", "nd:t4"),
		mk("btt", "nd_btt", "nd:t5"),
		mk("pfn", "nd_pfn", "nd:t7"),
		mk("dax", "nd_dax", "nd:t13"),
	}
}
