package metrics

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cxlregion/cxlregiond/internal/region"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// fakeSource is a Source whose model the test replaces between scrapes.
type fakeSource struct {
	mu      sync.Mutex
	roots   []region.RootDecoderInfo
	regions []region.RegionInfo
}

func (f *fakeSource) set(roots []region.RootDecoderInfo, regions []region.RegionInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.roots, f.regions = roots, regions
}

func (f *fakeSource) Regions() []region.RegionInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]region.RegionInfo(nil), f.regions...)
}

func (f *fakeSource) RootDecoders() []region.RootDecoderInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]region.RootDecoderInfo(nil), f.roots...)
}

func reg(name, root, typ string, st region.State) region.RegionInfo {
	return region.RegionInfo{Name: name, RootDecoder: root, Type: typ, State: st, UUID: "uuid-of-" + name}
}

// withMemory gives a region 128 MiB memory blocks in the given zones; ""
// is an offline block.
func withMemory(r region.RegionInfo, zones ...string) region.RegionInfo {
	r.Memory.BlockSize = 128 << 20
	for i, z := range zones {
		b := sysfs.MemoryBlock{Name: fmt.Sprintf("memory%d", 100+i), Index: uint64(100 + i), State: sysfs.BlockOnline, ValidZones: z, Node: 1}
		if z == "" {
			b.State, b.ValidZones = sysfs.BlockOffline, "Normal Movable"
		}
		r.Memory.Blocks = append(r.Memory.Blocks, b)
	}
	return r
}

func TestSnapshotCollector(t *testing.T) {
	tests := []struct {
		name    string
		roots   []region.RootDecoderInfo
		regions []region.RegionInfo
		// want holds the non-zero series; wantRegionSeries the number of
		// cxlregiond_regions series including the zeros.
		want             map[string]float64
		wantRegionSeries int
	}{
		{
			name: "two windows",
			roots: []region.RootDecoderInfo{
				{Name: "decoder0.0", Frozen: true, FrozenReason: "root port0 removed", QueueDepth: 2},
				{Name: "decoder1.0"},
			},
			regions: []region.RegionInfo{
				reg("region0", "decoder0.0", "pmem", region.StateEnabled),
				reg("region2", "decoder0.0", "pmem", region.StateEnabled),
				reg("region1", "decoder0.0", "ram", region.StateCommitted),
				reg("region3", "decoder1.0", "ram", region.StateDeleting),
				reg("region4", "decoder1.0", "pmem", region.StateConfiguring),
				withMemory(reg("region5", "decoder1.0", "ram", region.StateEnabled), "Movable", "Movable", "Normal", ""),
			},
			want: map[string]float64{
				"cxlregiond_regions{root_decoder=decoder0.0,state=enabled,type=pmem}":     2,
				"cxlregiond_regions{root_decoder=decoder0.0,state=committed,type=ram}":    1,
				"cxlregiond_regions{root_decoder=decoder1.0,state=deleting,type=ram}":     1,
				"cxlregiond_regions{root_decoder=decoder1.0,state=configuring,type=pmem}": 1,
				"cxlregiond_writer_frozen{root_decoder=decoder0.0}":                       1,
				"cxlregiond_writer_queue_depth{root_decoder=decoder0.0}":                  2,
				"cxlregiond_regions{root_decoder=decoder1.0,state=enabled,type=ram}":      1,
				"cxlregiond_online_memory_bytes{root_decoder=decoder1.0,zone=movable}":    2 << 27,
				"cxlregiond_online_memory_bytes{root_decoder=decoder1.0,zone=normal}":     1 << 27,
			},
			wantRegionSeries: 2 * 4 * 2,
		},
		{
			name:             "no CXL",
			want:             map[string]float64{},
			wantRegionSeries: 0,
		},
		{
			name:  "unknown type and state fold into other",
			roots: []region.RootDecoderInfo{{Name: "decoder0.0"}},
			regions: []region.RegionInfo{
				reg("region0", "decoder0.0", "dcd", region.State("haunted")),
			},
			want: map[string]float64{
				"cxlregiond_regions{root_decoder=decoder0.0,state=other,type=other}": 1,
			},
			wantRegionSeries: 4*2 + 1,
		},
		{
			// Two names folded into "other" must merge; a second series with
			// the same labels would make the whole scrape fail.
			name: "names that are not decoders fold into one series",
			roots: []region.RootDecoderInfo{
				{Name: "bogus one", Frozen: true, QueueDepth: 1},
				{Name: "bogus two", QueueDepth: 3},
			},
			regions: []region.RegionInfo{
				reg("region0", "bogus one", "pmem", region.StateEnabled),
				reg("region1", "bogus two", "pmem", region.StateEnabled),
			},
			want: map[string]float64{
				"cxlregiond_regions{root_decoder=other,state=enabled,type=pmem}": 2,
				"cxlregiond_writer_frozen{root_decoder=other}":                   1,
				"cxlregiond_writer_queue_depth{root_decoder=other}":              4,
			},
			wantRegionSeries: 4 * 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &fakeSource{}
			src.set(tt.roots, tt.regions)
			m := New(Options{Source: src})
			if diff := cmp.Diff(tt.want, series(t, m.reg)); diff != "" {
				t.Errorf("series (-want +got):\n%s", diff)
			}
			n, err := testutil.GatherAndCount(m.reg, "cxlregiond_regions")
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.wantRegionSeries {
				t.Errorf("cxlregiond_regions has %d series, want %d (every state and type per root decoder)", n, tt.wantRegionSeries)
			}
		})
	}
}

// TestSnapshotFollowsTheModel checks that the gauges are recomputed on each
// scrape: a thawed writer drops to 0 and a root decoder that went away
// leaves no stale series.
func TestSnapshotFollowsTheModel(t *testing.T) {
	src := &fakeSource{}
	src.set(
		[]region.RootDecoderInfo{{Name: "decoder0.0", Frozen: true}, {Name: "decoder1.0", QueueDepth: 5}},
		[]region.RegionInfo{reg("region0", "decoder1.0", "ram", region.StateEnabled)},
	)
	m := New(Options{Source: src})
	first := `# HELP cxlregiond_writer_frozen 1 while the root decoder's writer is frozen (its root is being torn down), else 0.
# TYPE cxlregiond_writer_frozen gauge
cxlregiond_writer_frozen{root_decoder="decoder0.0"} 1
cxlregiond_writer_frozen{root_decoder="decoder1.0"} 0
# HELP cxlregiond_writer_queue_depth Requests waiting for the root decoder's writer.
# TYPE cxlregiond_writer_queue_depth gauge
cxlregiond_writer_queue_depth{root_decoder="decoder0.0"} 0
cxlregiond_writer_queue_depth{root_decoder="decoder1.0"} 5
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(first), "cxlregiond_writer_frozen", "cxlregiond_writer_queue_depth"); err != nil {
		t.Error(err)
	}

	src.set([]region.RootDecoderInfo{{Name: "decoder0.0"}}, nil)
	second := `# HELP cxlregiond_writer_frozen 1 while the root decoder's writer is frozen (its root is being torn down), else 0.
# TYPE cxlregiond_writer_frozen gauge
cxlregiond_writer_frozen{root_decoder="decoder0.0"} 0
# HELP cxlregiond_writer_queue_depth Requests waiting for the root decoder's writer.
# TYPE cxlregiond_writer_queue_depth gauge
cxlregiond_writer_queue_depth{root_decoder="decoder0.0"} 0
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(second), "cxlregiond_writer_frozen", "cxlregiond_writer_queue_depth"); err != nil {
		t.Error(err)
	}
	if diff := cmp.Diff(map[string]float64{}, series(t, m.reg)); diff != "" {
		t.Errorf("stale series after the model emptied (-want +got):\n%s", diff)
	}
}

func TestSetSource(t *testing.T) {
	m := New(Options{})
	if n, err := testutil.GatherAndCount(m.reg, "cxlregiond_writer_frozen"); err != nil || n != 0 {
		t.Fatalf("before SetSource: %d writer_frozen series, err %v; want none", n, err)
	}
	src := &fakeSource{}
	src.set([]region.RootDecoderInfo{{Name: "decoder0.0", Frozen: true}}, nil)
	if err := m.SetSource(src); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"cxlregiond_writer_frozen{root_decoder=decoder0.0}": 1}
	if diff := cmp.Diff(want, series(t, m.reg)); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
	if err := m.SetSource(src); err == nil {
		t.Error("a second SetSource succeeded; its series would collide with the first")
	}
}

// capacityFake is a Source with device capacity, as the engine is.
type capacityFake struct {
	fakeSource
	caps []region.MemdevCapacity
}

func (f *capacityFake) Capacity() ([]region.MemdevCapacity, error) { return f.caps, nil }

// TestCapacitySeries: one series per memdev and kind, a name that is not a
// memdev folded into other (bounded labels), and stranded capacity shown.
func TestCapacitySeries(t *testing.T) {
	src := &capacityFake{caps: []region.MemdevCapacity{
		{Memdev: "mem0", Total: 1 << 30, Allocated: 768 << 20, Free: 256 << 20, Stranded: 512 << 20},
		{Memdev: "../evil", Total: 1},
		{Memdev: "mem01", Total: 2},
	}}
	m := New(Options{Source: src})
	got := map[string]float64{}
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "cxlregiond_memdev_capacity_bytes" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got[strings.Join(labels, ",")] = mt.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"kind=total,memdev=mem0": 1 << 30, "kind=allocated,memdev=mem0": 768 << 20,
		"kind=free,memdev=mem0": 256 << 20, "kind=stranded,memdev=mem0": 512 << 20,
		"kind=total,memdev=other": 3, "kind=allocated,memdev=other": 0,
		"kind=free,memdev=other": 0, "kind=stranded,memdev=other": 0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("capacity series (-want +got):\n%s", diff)
	}
}
