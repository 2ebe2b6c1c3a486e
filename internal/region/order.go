package region

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// The kernel hands out a device's capacity in order and takes it back only
// from the top (drivers/cxl/core/hdm.c, region.c; docs/kernel.md#config-order):
//
//   - DPA: dpa_size is allocated only on a port's next decoder
//     (hdm_end + 1) and freed only on its highest allocated one
//     (cxl_dpa_free: id != hdm_end is EBUSY).
//   - Commit: a port commits decoders only in id order
//     (cxl_decoder_commit: id != commit_end + 1 is EBUSY). A region's host
//     bridge decoder is chosen by the kernel (match_free_decoder), so a free
//     decoder left below a committed one blocks the whole host bridge
//     ("out of order shutdown" on 6.12, an out-of-order commit on 6.1)
//     until the regions above it are deleted.
//   - HPA: a port maps its regions in increasing HPA order
//     (alloc_region_ref: "HPA order violation", EBUSY), and a new region
//     gets the lowest free 256 MiB aligned range of its window
//     (alloc_free_mem_region).
//
// orderView reads these rules from one topology, so that the planner picks
// what the kernel will accept or refuses before anything is written, and
// so that what is stranded is known from sysfs alone (it survives a
// restart).
type orderView struct {
	topo      *sysfs.Topology
	committed map[string]bool // region name → commit is 1
	regions   map[string]sysfs.Region
	eds       map[string]sysfs.EndpointDecoder
}

func newOrderView(topo *sysfs.Topology) *orderView {
	v := &orderView{topo: topo, committed: map[string]bool{}, regions: map[string]sysfs.Region{}, eds: map[string]sysfs.EndpointDecoder{}}
	for _, r := range topo.Regions {
		v.regions[r.Name] = r
		v.committed[r.Name] = r.Committed
	}
	for _, ed := range topo.EndpointDecoders {
		v.eds[ed.Name] = ed
	}
	return v
}

// decoderIndex is K of decoderM.K, -1 for a name without one.
func decoderIndex(name string) int {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return -1
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil {
		return -1
	}
	return n
}

// portDecoders are the endpoint decoders of a port in id order.
func (v *orderView) portDecoders(port string) []sysfs.EndpointDecoder {
	var out []sysfs.EndpointDecoder
	for _, ed := range v.topo.EndpointDecoders {
		if ed.Port == port {
			out = append(out, ed)
		}
	}
	slices.SortFunc(out, func(a, b sysfs.EndpointDecoder) int { return decoderIndex(a.Name) - decoderIndex(b.Name) })
	return out
}

// isStranded: capacity still allocated on a decoder that no region uses,
// which the kernel gives back only once it is the port's top allocation.
func isStranded(ed sysfs.EndpointDecoder) bool { return ed.DPASize != 0 && ed.Region == "" }

// strandedNote explains each stranded decoder of a port and what frees it:
// "mem0: decoder3.0 still holds 256 MiB of a deleted region; it is freed
// when region4 (decoder3.1) is deleted".
func (v *orderView) strandedNote(port string) string {
	var notes []string
	for _, ed := range v.portDecoders(port) {
		if n := v.strandedReason(ed); n != "" {
			notes = append(notes, n)
		}
	}
	return strings.Join(notes, "; ")
}

// strandedReason explains one stranded decoder, or "" when ed is not one.
func (v *orderView) strandedReason(ed sysfs.EndpointDecoder) string {
	if !isStranded(ed) {
		return ""
	}
	var above []string
	for _, o := range v.portDecoders(ed.Port) {
		if decoderIndex(o.Name) > decoderIndex(ed.Name) && o.Region != "" {
			above = append(above, o.Region+" ("+o.Name+")")
		}
	}
	if len(above) == 0 {
		return fmt.Sprintf("%s: %s still holds %s of a deleted region; it is the top allocation, freed by the next delete on %s", ed.Memdev, ed.Name, formatBytes(ed.DPASize), ed.Memdev)
	}
	return fmt.Sprintf("%s: %s still holds %s of a deleted region; it is freed when %s %s deleted",
		ed.Memdev, ed.Name, formatBytes(ed.DPASize), strings.Join(above, " and "), isAre(len(above)))
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// endpointOrder says why the kernel would refuse ed as a new region's
// target by its order rules, or "".
func (v *orderView) endpointOrder(ed sysfs.EndpointDecoder) string {
	id := decoderIndex(ed.Name)
	commitEnd, hdmEnd := -1, -1
	var top sysfs.EndpointDecoder
	for _, o := range v.portDecoders(ed.Port) {
		oid := decoderIndex(o.Name)
		if o.Region != "" && v.committed[o.Region] && oid > commitEnd {
			commitEnd, top = oid, o
		}
		if o.DPASize != 0 && oid > hdmEnd {
			hdmEnd = oid
		}
	}
	note := v.strandedNote(ed.Port)
	if note != "" {
		note = " (" + note + ")"
	}
	switch {
	case id <= commitEnd:
		return fmt.Sprintf("below %s, which %s holds committed: a port commits its decoders in id order%s", top.Name, top.Region, note)
	case id > commitEnd+1:
		return fmt.Sprintf("decoder%s.%d must be committed before it: a port commits its decoders in id order%s", portNumberOf(ed.Name), commitEnd+1, note)
	case ed.DPASize == 0 && id != hdmEnd+1:
		return fmt.Sprintf("the kernel allocates capacity only on decoder%s.%d next (decoders are allocated in id order)%s", portNumberOf(ed.Name), hdmEnd+1, note)
	}
	return ""
}

// portNumberOf is M of decoderM.K.
func portNumberOf(decoder string) string {
	s := strings.TrimPrefix(decoder, "decoder")
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return s[:i]
	}
	return s
}

// hostBridgeOrder says why the kernel would refuse to route a new region
// through host bridge port hb, or "": the kernel picks the bridge's decoder
// itself, the lowest free one on 6.1 and commit_end + 1 with every lower
// decoder committed on 6.12; both fail when a free decoder sits below a
// committed one, and when none is free.
func (v *orderView) hostBridgeOrder(hb string) string {
	var sds []sysfs.SwitchDecoder
	for _, sd := range v.topo.SwitchDecoders {
		if sd.Port == hb {
			sds = append(sds, sd)
		}
	}
	if len(sds) == 0 {
		return "" // a topology without host bridge decoders (passthrough): nothing to order
	}
	slices.SortFunc(sds, func(a, b sysfs.SwitchDecoder) int { return decoderIndex(a.Name) - decoderIndex(b.Name) })
	commitEnd := -1
	var top sysfs.SwitchDecoder
	for _, sd := range sds {
		if sd.Region != "" && v.committed[sd.Region] {
			commitEnd, top = decoderIndex(sd.Name), sd
		}
	}
	for _, sd := range sds {
		id := decoderIndex(sd.Name)
		if id >= commitEnd {
			break
		}
		if sd.Region == "" || !v.committed[sd.Region] {
			var above []string
			for _, o := range sds {
				if decoderIndex(o.Name) > id && o.Region != "" {
					above = append(above, o.Region)
				}
			}
			return fmt.Sprintf("host bridge %s: %s is free below %s, which %s holds committed: a port commits and shuts down its decoders in id order, so %s takes no new region until %s %s deleted",
				hb, sd.Name, top.Name, top.Region, hb, strings.Join(above, " and "), isAre(len(above)))
		}
	}
	for _, sd := range sds {
		if decoderIndex(sd.Name) != commitEnd+1 {
			continue
		}
		if sd.Region != "" {
			return fmt.Sprintf("host bridge %s: its next decoder %s is taken by %s, not committed yet", hb, sd.Name, sd.Region)
		}
		return ""
	}
	return fmt.Sprintf("host bridge %s has no free decoder: all %d hold regions", hb, len(sds))
}

// nextHPA is where the kernel will place a new region of size bytes in the
// window (alloc_free_mem_region: the lowest 256 MiB aligned free range),
// and false when it has no room or its start is unreadable.
func (v *orderView) nextHPA(rd sysfs.RootDecoder, size uint64) (uint64, bool) {
	if rd.Start == nil {
		return 0, false
	}
	type extent struct{ start, end uint64 }
	var used []extent
	for _, r := range v.topo.Regions {
		if r.RootDecoder == rd.Name && r.Resource != nil {
			used = append(used, extent{*r.Resource, *r.Resource + r.Size})
		}
	}
	slices.SortFunc(used, func(a, b extent) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	const align = 256 << 20
	cur, end := *rd.Start, *rd.Start+rd.Size
	for _, u := range used {
		if u.start >= cur+size {
			break
		}
		if u.end > cur {
			cur = (u.end + align - 1) &^ (align - 1)
		}
	}
	if cur+size > end || cur+size < cur {
		return 0, false
	}
	return cur, true
}

// largestHPA is the largest 256 MiB multiple of ways × 256 MiB that the
// window can still place.
func (v *orderView) largestHPA(rd sysfs.RootDecoder, ways int) uint64 {
	step := uint64(ways) << 28
	if step == 0 {
		return 0
	}
	if rd.Start == nil {
		return rd.Size / step * step // placement unknown: the window's size bounds it
	}
	for size := rd.Size / step * step; size > 0; size -= step {
		if _, ok := v.nextHPA(rd, size); ok {
			return size
		}
	}
	return 0
}

// hpaOrder says why a port could not map a region starting at start, or "":
// it already maps a region above it.
func (v *orderView) hpaOrder(port string, start uint64) string {
	for _, r := range v.topo.Regions {
		if r.Resource == nil || *r.Resource <= start {
			continue
		}
		for _, t := range r.Targets {
			ed, ok := v.eds[t]
			if ok && (ed.Port == port || ed.HostBridge == port) {
				return fmt.Sprintf("%s already maps %s at %#x, above this region's %#x: a port maps its regions in increasing HPA order (HPA order violation)",
					port, r.Name, *r.Resource, start)
			}
		}
	}
	return ""
}

// MemdevCapacity is one memdev's device capacity as the kernel hands it
// out: allocated includes stranded, capacity still held by decoders whose
// region was deleted below another region (freed when those go).
type MemdevCapacity struct {
	Memdev    string
	Total     uint64 // ram + pmem
	Allocated uint64
	Free      uint64
	Stranded  uint64
	Decoders  []DecoderCapacity
}

// DecoderCapacity is one endpoint decoder's allocation.
type DecoderCapacity struct {
	Name     string
	Memdev   string
	Mode     string
	DPASize  uint64
	Region   string // "" when no region uses it
	Stranded bool   // allocated, no region, not the port's top allocation
}

// memdevCapacities reads every memdev's capacity from one topology.
func memdevCapacities(topo *sysfs.Topology) []MemdevCapacity {
	// The endpoint decoders of each memdev, found in one pass: the service
	// asks for every memdev's capacity on each sync (each second), and a
	// walk of every endpoint decoder per memdev was 2048 × 8192 steps on a
	// host of 4096 regions (bench BenchmarkIdle).
	byMemdev := make(map[string][]int, len(topo.Memdevs))
	for i, ed := range topo.EndpointDecoders {
		byMemdev[ed.Memdev] = append(byMemdev[ed.Memdev], i)
	}
	out := make([]MemdevCapacity, 0, len(topo.Memdevs))
	for _, m := range topo.Memdevs {
		mc := MemdevCapacity{Memdev: m.Name, Total: m.RAMSize + m.PmemSize}
		for _, i := range byMemdev[m.Name] {
			ed := topo.EndpointDecoders[i]
			dc := DecoderCapacity{Name: ed.Name, Memdev: ed.Memdev, Mode: ed.Mode, DPASize: ed.DPASize, Region: ed.Region, Stranded: isStranded(ed)}
			mc.Allocated += ed.DPASize
			if dc.Stranded {
				mc.Stranded += ed.DPASize
			}
			mc.Decoders = append(mc.Decoders, dc)
		}
		slices.SortFunc(mc.Decoders, func(a, b DecoderCapacity) int { return sysfs.CompareNames(a.Name, b.Name) })
		mc.Free = mc.Total - min(mc.Total, mc.Allocated)
		out = append(out, mc)
	}
	return out
}

// largestCreate is the largest region a create in the window can get now,
// HPA and device capacity and the order rules together: what the planner
// gives a create without a size, over the region types the window takes
// (cxl's max_available_extent, bounded by the devices).
func largestCreate(topo *sysfs.Topology, rd sysfs.RootDecoder) uint64 {
	var best uint64
	for _, typ := range []string{"pmem", "ram"} {
		if typ == "pmem" && !rd.CreatePmem || typ == "ram" && !rd.CreateRAM {
			continue
		}
		req := CreateRequest{RootDecoder: rd.Name, Type: typ, UUID: "", NoBind: true}
		if p, err := planCreate(req, topo, func(string) bool { return false }); err == nil {
			best = max(best, p.size)
		}
	}
	return best
}
