package cxlsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
)

// Topology is the hardware the simulated kernel enumerates: CXL host
// bridges, the fixed memory windows (CFMWS) that become root decoders, and
// type-3 memory devices behind the host bridges. Names follow from the
// order of the slices, as the kernel numbers them on a boot:
//
//   - root0 is the CXL root (ACPI0017:00); root decoders are decoder0.<i>
//     in RootDecoders order;
//   - host bridge i is port<i+1>, with switch decoders decoder<i+1>.<j>;
//   - memdev i is mem<i>, its endpoint port endpoint<len(HostBridges)+1+i>
//     with endpoint decoders decoder<endpoint id>.<j>; memdevs with pmem
//     capacity also get the cxl_nvdimm pmem<i> and the nd nmem<i>.
//
// Each memdev sits behind its own root port of its host bridge, as QEMU's
// cxl-rp devices do; switches are not modelled.
type Topology struct {
	HostBridges  []HostBridge  `json:"host_bridges"`
	RootDecoders []RootDecoder `json:"root_decoders"`
	Memdevs      []Memdev      `json:"memdevs"`
}

// HostBridge is a CXL host bridge (ACPI0016, pci0000:<bus>).
type HostBridge struct {
	// UID is the host bridge's ACPI _UID: the dport id in root0/dport<UID>
	// and in the root decoders' target_list. QEMU uses the pxb bus number
	// (12 for bus_nr=12). It is also used as the PCI bus number.
	UID int `json:"uid"`
	// Decoders is the number of HDM decoders of the host bridge port
	// (switch decoders); each region through the bridge takes one.
	Decoders int `json:"decoders"`
}

// RootDecoder is a CXL fixed memory window.
type RootDecoder struct {
	Start Size `json:"start"`
	Size  Size `json:"size"`
	// HostBridges are indices into Topology.HostBridges, in interleave
	// order: the window's interleave_ways is their number.
	HostBridges []int `json:"host_bridges"`
	Granularity int   `json:"granularity"`
	Pmem        bool  `json:"pmem"`
	RAM         bool  `json:"ram"`
	Type2       bool  `json:"type2,omitempty"`
	QoSClass    int   `json:"qos_class,omitempty"`
	Locked      bool  `json:"locked,omitempty"`
}

// Memdev is a CXL type-3 memory device.
type Memdev struct {
	HostBridge int  `json:"host_bridge"` // index into Topology.HostBridges
	RAMSize    Size `json:"ram_size"`
	PmemSize   Size `json:"pmem_size"`
	// Decoders is the number of endpoint (HDM) decoders.
	Decoders int    `json:"decoders"`
	Serial   uint64 `json:"serial,omitempty"`
}

// Size is a byte count. In JSON it is a number or a string with an
// optional binary suffix: 268435456, "0x10000000", "256M", "4G".
type Size uint64

// UnmarshalJSON accepts a number or a size string.
func (s *Size) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		var n uint64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("size %s: want a number or a string", b)
		}
		*s = Size(n)
		return nil
	}
	v, err := ParseSize(str)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSize parses "256M", "4G", "1T", "0x10000000" or a decimal number.
func ParseSize(str string) (Size, error) {
	str = strings.TrimSpace(str)
	mult := uint64(1)
	if n := len(str); n > 0 {
		switch str[n-1] {
		case 'K', 'k':
			mult = 1 << 10
		case 'M', 'm':
			mult = 1 << 20
		case 'G', 'g':
			mult = 1 << 30
		case 'T', 't':
			mult = 1 << 40
		}
		if mult != 1 {
			str = str[:n-1]
		}
	}
	v, err := strconv.ParseUint(str, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", str, err)
	}
	hi, lo := bits.Mul64(v, mult)
	if hi != 0 {
		return 0, fmt.Errorf("size %q: overflows 64 bits", str)
	}
	return Size(lo), nil
}

const (
	sz256M = 256 << 20
	sz1G   = 1 << 30
)

// QEMUTopology is the captured machine (docs/kernel.md#captures): one host bridge
// (bus 12), one 256 MiB pmem-only memdev with one endpoint decoder, and one
// 4 GiB window at 0x390000000 that allows pmem and ram. Its names are the
// captures' names: root0, decoder0.0, port1, decoder1.0, endpoint2,
// decoder2.0, mem0, pmem0, nvdimm-bridge0.
func QEMUTopology() Topology {
	return Topology{
		HostBridges: []HostBridge{{UID: 12, Decoders: 1}},
		RootDecoders: []RootDecoder{{
			Start: 0x390000000, Size: 4 * sz1G, HostBridges: []int{0},
			Granularity: 256, Pmem: true, RAM: true, Type2: true,
		}},
		Memdevs: []Memdev{{HostBridge: 0, PmemSize: sz256M, Decoders: 1}},
	}
}

// DefaultTopology is a two-socket-like machine for tests and --simulate:
// two host bridges (UIDs 12 and 32, four decoders each), eight memdevs
// (mem0..mem3 on the first bridge, mem4..mem7 on the second), each with
// 2 GiB ram + 2 GiB pmem and four endpoint decoders, and four windows:
//
//	decoder0.0  pmem      1-way on host bridge 0        4 GiB at 0x390000000
//	decoder0.1  pmem      2-way across both bridges     8 GiB at 0x490000000
//	decoder0.2  ram       1-way on host bridge 1        4 GiB at 0x690000000
//	decoder0.3  ram+pmem  2-way across both bridges     8 GiB at 0x790000000
//
// Names: root0, port1 and port2 (the bridges), endpoint3..endpoint10
// (mem0..mem7), decoder1.0..decoder2.3 (bridge decoders),
// decoder3.0..decoder10.3 (endpoint decoders).
func DefaultTopology() Topology {
	t := Topology{
		HostBridges: []HostBridge{{UID: 12, Decoders: 4}, {UID: 32, Decoders: 4}},
		RootDecoders: []RootDecoder{
			{Start: 0x390000000, Size: 4 * sz1G, HostBridges: []int{0}, Granularity: 256, Pmem: true},
			{Start: 0x490000000, Size: 8 * sz1G, HostBridges: []int{0, 1}, Granularity: 256, Pmem: true},
			{Start: 0x690000000, Size: 4 * sz1G, HostBridges: []int{1}, Granularity: 256, RAM: true},
			{Start: 0x790000000, Size: 8 * sz1G, HostBridges: []int{0, 1}, Granularity: 256, RAM: true, Pmem: true},
		},
	}
	for i := range 8 {
		t.Memdevs = append(t.Memdevs, Memdev{
			HostBridge: i / 4, RAMSize: 2 * sz1G, PmemSize: 2 * sz1G, Decoders: 4, Serial: uint64(i),
		})
	}
	return t
}

// LoadTopology reads a topology in JSON (see testdata/topology-default.json)
// and validates it.
func LoadTopology(r io.Reader) (Topology, error) {
	var t Topology
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return Topology{}, fmt.Errorf("load topology: %w", err)
	}
	if err := t.Validate(); err != nil {
		return Topology{}, fmt.Errorf("load topology: %w", err)
	}
	return t, nil
}

// AddHostBridge appends a host bridge and returns its index.
func (t *Topology) AddHostBridge(uid, decoders int) int {
	t.HostBridges = append(t.HostBridges, HostBridge{UID: uid, Decoders: decoders})
	return len(t.HostBridges) - 1
}

// AddWindow appends a root decoder and returns its name (decoder0.<i>).
func (t *Topology) AddWindow(w RootDecoder) string {
	t.RootDecoders = append(t.RootDecoders, w)
	return fmt.Sprintf("decoder0.%d", len(t.RootDecoders)-1)
}

// AddMemdev appends a memdev and returns its name (mem<i>).
func (t *Topology) AddMemdev(m Memdev) string {
	t.Memdevs = append(t.Memdevs, m)
	return fmt.Sprintf("mem%d", len(t.Memdevs)-1)
}

// errTopology marks an invalid topology.
var errTopology = errors.New("invalid topology")

// Validate checks what the kernel would refuse to enumerate or what the
// model cannot represent.
func (t Topology) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", errTopology, fmt.Sprintf(format, a...))
	}
	if len(t.HostBridges) == 0 {
		return bad("no host bridges")
	}
	uids := map[int]bool{}
	for i, hb := range t.HostBridges {
		if hb.UID < 0 || hb.UID > 255 {
			return bad("host bridge %d: uid %d not a PCI bus number", i, hb.UID)
		}
		if uids[hb.UID] {
			return bad("host bridge %d: duplicate uid %d", i, hb.UID)
		}
		uids[hb.UID] = true
		if hb.Decoders < 1 || hb.Decoders > 32 {
			return bad("host bridge %d: %d decoders", i, hb.Decoders)
		}
	}
	for i, w := range t.RootDecoders {
		ways := len(w.HostBridges)
		if _, ok := waysToEIW(ways); !ok {
			return bad("window %d: %d host bridges is not an encodable interleave", i, ways)
		}
		for _, hb := range w.HostBridges {
			if hb < 0 || hb >= len(t.HostBridges) {
				return bad("window %d: host bridge %d does not exist", i, hb)
			}
		}
		if !validGranularity(w.Granularity) {
			return bad("window %d: granularity %d", i, w.Granularity)
		}
		if w.Size == 0 || uint64(w.Size)%(sz256M*uint64(ways)) != 0 || uint64(w.Start)%sz256M != 0 {
			return bad("window %d: start %#x size %#x not 256 MiB x ways aligned", i, uint64(w.Start), uint64(w.Size))
		}
		if !w.Pmem && !w.RAM {
			return bad("window %d: neither pmem nor ram", i)
		}
		for j, o := range t.RootDecoders[:i] {
			if uint64(w.Start) < uint64(o.Start)+uint64(o.Size) && uint64(o.Start) < uint64(w.Start)+uint64(w.Size) {
				return bad("window %d overlaps window %d", i, j)
			}
		}
	}
	for i, m := range t.Memdevs {
		if m.HostBridge < 0 || m.HostBridge >= len(t.HostBridges) {
			return bad("memdev %d: host bridge %d does not exist", i, m.HostBridge)
		}
		if m.Decoders < 1 || m.Decoders > 32 {
			return bad("memdev %d: %d decoders", i, m.Decoders)
		}
		if uint64(m.RAMSize)%sz256M != 0 || uint64(m.PmemSize)%sz256M != 0 {
			return bad("memdev %d: capacities must be 256 MiB multiples", i)
		}
	}
	perHB := map[int]int{}
	for _, m := range t.Memdevs {
		perHB[m.HostBridge]++
	}
	for hb, n := range perHB {
		if t.HostBridges[hb].UID+n > 255 {
			return bad("host bridge %d: %d root ports do not fit the PCI bus range", hb, n)
		}
	}
	return nil
}

// waysToEIW is the kernel's ways_to_eiw: 1, 2, 4, 8, 16, 3, 6, 12.
func waysToEIW(ways int) (int, bool) {
	if ways <= 0 || ways > 16 {
		return 0, false
	}
	if ways&(ways-1) == 0 {
		return bits.TrailingZeros(uint(ways)), true
	}
	if ways%3 != 0 {
		return 0, false
	}
	w := ways / 3
	if w&(w-1) != 0 {
		return 0, false
	}
	return bits.TrailingZeros(uint(w)) + 8, true
}

// validGranularity is the kernel's granularity_to_eig: powers of two from
// 256 to 16 KiB.
func validGranularity(g int) bool {
	return g >= 256 && g <= 16384 && g&(g-1) == 0
}
