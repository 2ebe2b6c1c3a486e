package api

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"
)

func regionProps() Properties {
	return Properties{
		PropName:                  dbus.MakeVariant("region3"),
		PropRootDecoder:           dbus.MakeVariant("decoder0.0"),
		PropType:                  dbus.MakeVariant("pmem"),
		PropSize:                  dbus.MakeVariant(uint64(512 << 20)),
		PropResource:              dbus.MakeVariant(uint64(0x1890000000)),
		PropUUID:                  dbus.MakeVariant("0ae1f9aa-7a1c-4e2b-9bb4-3b2f3e44a001"),
		PropInterleaveWays:        dbus.MakeVariant(uint32(2)),
		PropInterleaveGranularity: dbus.MakeVariant(uint32(256)),
		PropTargets:               dbus.MakeVariant([]string{"decoder2.0", ""}),
		PropMemdevs:               dbus.MakeVariant([]string{"mem0", ""}),
		PropState:                 dbus.MakeVariant(StateEnabled),
		PropGeneration:            dbus.MakeVariant(uint64(7)),
		PropOrigin:                dbus.MakeVariant("daemon"),
		PropSettled:               dbus.MakeVariant(true),
		PropDaxMode:               dbus.MakeVariant("system-ram"),
		PropTargetNode:            dbus.MakeVariant(int32(1)),
		PropMemoryBlocks:          dbus.MakeVariant(uint32(1)),
		PropOnlineMemoryBlocks:    dbus.MakeVariant(uint32(1)),
		PropOnlineMemoryBytes:     dbus.MakeVariant(uint64(128 << 20)),
		PropMovable:               dbus.MakeVariant(true),
	}
}

func TestDecodeRegion(t *testing.T) {
	node := int32(1)
	got, err := DecodeRegion(regionProps())
	if err != nil {
		t.Fatal(err)
	}
	want := Region{
		Region: "region3", Resource: 0x1890000000, Size: 512 << 20, Type: "pmem",
		InterleaveWays: 2, InterleaveGranularity: 256, DecodeState: "commit",
		UUID:        "0ae1f9aa-7a1c-4e2b-9bb4-3b2f3e44a001",
		Mappings:    []Mapping{{Position: 0, Memdev: "mem0", Decoder: "decoder2.0"}},
		RootDecoder: "decoder0.0", Generation: 7, Origin: "daemon", Lifecycle: StateEnabled, Settled: true,
		Mode: "system-ram", TargetNode: &node, TotalMemblocks: 1, OnlineMemblocks: 1, OnlineMemoryBytes: 128 << 20, Movable: true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DecodeRegion (-want +got):\n%s", diff)
	}
}

// TestRegionJSONMeansWhatCxlListMeans: state and decode_state have cxl
// list -R's meaning and type (state only "disabled", only for a region not
// bound; decode_state "commit" or "reset"); the daemon's lifecycle is a
// field of its own.
func TestRegionJSONMeansWhatCxlListMeans(t *testing.T) {
	for _, tt := range []struct {
		lifecycle string
		want      string // the JSON's state and decode_state members
	}{
		{StateConfiguring, `"decode_state":"reset","state":"disabled"`},
		{StateCommitted, `"decode_state":"commit","state":"disabled"`},
		{StateEnabled, `"decode_state":"commit","uuid"`},
		{StateDeleting, `"interleave_granularity":256,"state":"disabled"`},
	} {
		p := regionProps()
		p[PropState] = dbus.MakeVariant(tt.lifecycle)
		r, err := DecodeRegion(p)
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), tt.want) || !strings.Contains(string(data), `"lifecycle":"`+tt.lifecycle+`"`) {
			t.Errorf("lifecycle %s: %s, want %s and the lifecycle field", tt.lifecycle, data, tt.want)
		}
	}
}

func TestDecodeRegionRefusesBadProperties(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(Properties)
		want   string
	}{
		{"missing", func(p Properties) { delete(p, PropGeneration) }, "Generation missing"},
		{"mistyped", func(p Properties) { p[PropSize] = dbus.MakeVariant(int32(1)) }, "Size has type i, want t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := regionProps()
			tt.mutate(p)
			_, err := DecodeRegion(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestDecodeState(t *testing.T) {
	for state, want := range map[string]string{
		StateConfiguring: "reset", StateCommitted: "commit", StateEnabled: "commit", StateDeleting: "",
	} {
		if got := DecodeState(state); got != want {
			t.Errorf("DecodeState(%s) = %q, want %q", state, got, want)
		}
	}
}

func TestDecodeStatus(t *testing.T) {
	rd := Properties{
		PropName: dbus.MakeVariant("decoder0.0"), PropPort: dbus.MakeVariant("root0"),
		PropPmemCapable: dbus.MakeVariant(true), PropRAMCapable: dbus.MakeVariant(false),
		PropSize: dbus.MakeVariant(uint64(1 << 30)), PropFreeCapacity: dbus.MakeVariant(uint64(1 << 29)),
		PropInterleaveWays: dbus.MakeVariant(uint32(1)), PropInterleaveGranularity: dbus.MakeVariant(uint32(256)),
		PropTargets: dbus.MakeVariant([]string{"pci0000:0c"}), PropFrozen: dbus.MakeVariant(true),
		PropFrozenReason: dbus.MakeVariant("cxl_acpi unbound"), PropQueueDepth: dbus.MakeVariant(uint32(3)),
	}
	objs := ManagedObjects{
		RootDecodersPath + "/decoder0_0": {RootDecoderInterface: rd},
		RegionsPath + "/region3":         {RegionInterface: regionProps()},
	}
	mgr := Properties{
		PropVersion: dbus.MakeVariant("v1"), PropGuardActive: dbus.MakeVariant(true), PropGuardQueue: dbus.MakeVariant(uint32(2)),
		PropSimulated: dbus.MakeVariant(true), PropKernelFeatures: dbus.MakeVariant([]string{"create_pmem_region"}),
		PropMemdevCapacity: dbus.MakeVariant(map[string]map[string]uint64{
			"mem0": {"total": 1 << 30, "allocated": 512 << 20, "free": 512 << 20, "stranded": 256 << 20}}),
		PropEndpointDecoders: dbus.MakeVariant(map[string]map[string]dbus.Variant{
			"decoder3.0": {"memdev": dbus.MakeVariant("mem0"), "mode": dbus.MakeVariant("pmem"), "dpa_size": dbus.MakeVariant(uint64(256 << 20)),
				"region": dbus.MakeVariant(""), "stranded": dbus.MakeVariant(true)},
			"decoder3.1": {"memdev": dbus.MakeVariant("mem0"), "mode": dbus.MakeVariant("pmem"), "dpa_size": dbus.MakeVariant(uint64(256 << 20)),
				"region": dbus.MakeVariant("region4"), "stranded": dbus.MakeVariant(false)},
		}),
	}
	st, err := DecodeStatus(mgr, objs)
	if err != nil {
		t.Fatal(err)
	}
	want := Status{Version: "v1", GuardActive: true, GuardQueue: 2, Simulated: true, KernelFeatures: []string{"create_pmem_region"}, Regions: 1,
		RootDecoders: []RootDecoder{{Decoder: "decoder0.0", Port: "root0", Size: 1 << 30, MaxAvailableExtent: 1 << 29,
			PmemCapable: true, InterleaveWays: 1, InterleaveGranularity: 256, Targets: []string{"pci0000:0c"},
			Frozen: true, FrozenReason: "cxl_acpi unbound", QueueDepth: 3}},
		Memdevs: []Memdev{{Memdev: "mem0", Total: 1 << 30, Allocated: 512 << 20, Free: 512 << 20, Stranded: 256 << 20,
			Decoders: []EndpointDecoder{
				{Decoder: "decoder3.0", Memdev: "mem0", Mode: "pmem", DPASize: 256 << 20, Stranded: true},
				{Decoder: "decoder3.1", Memdev: "mem0", Mode: "pmem", DPASize: 256 << 20, Region: "region4"},
			}}}}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("DecodeStatus (-want +got):\n%s", diff)
	}
	regs, err := DecodeRegions(objs)
	if err != nil || len(regs) != 1 || regs[0].Region != "region3" {
		t.Errorf("DecodeRegions = %v, %v", regs, err)
	}
}

func TestOptionTypesCoverEveryOption(t *testing.T) {
	for _, set := range [][]string{CreateOptions, DeleteOptions, BindOptions} {
		for _, k := range set {
			if _, ok := OptionTypes[k]; !ok {
				t.Errorf("option %s has no type", k)
			}
			if !strings.Contains(IntrospectionXML, k) {
				t.Errorf("option %s is not documented in the XML", k)
			}
		}
	}
}

// TestDecodeJobRefusesProgressOutOfRange: FuzzDecode's first crasher. A
// Progress of NaN decoded, then `--json` failed to encode it; any value
// outside [0, 1] is now the decoder's error naming the property.
func TestDecodeJobRefusesProgressOutOfRange(t *testing.T) {
	props := func(p float64) Properties {
		return Properties{
			PropOperation: dbus.MakeVariant("delete"), PropProgress: dbus.MakeVariant(p),
			PropFinished: dbus.MakeVariant(false), PropSuccess: dbus.MakeVariant(false),
			PropErrorName: dbus.MakeVariant(""), PropMessage: dbus.MakeVariant(""),
			PropObjects: dbus.MakeVariant([]dbus.ObjectPath{}),
		}
	}
	for _, p := range []float64{0, 0.5, 1} {
		if _, err := DecodeJob(props(p)); err != nil {
			t.Errorf("progress %g: %v", p, err)
		}
	}
	for _, p := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), -0.1, 1.1} {
		if _, err := DecodeJob(props(p)); err == nil || !strings.Contains(err.Error(), PropProgress) {
			t.Errorf("progress %g: err %v, want one naming %s", p, err, PropProgress)
		}
	}
}
