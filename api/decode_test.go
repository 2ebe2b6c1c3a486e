package api

import (
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
		RootDecoder: "decoder0.0", Generation: 7, Origin: "daemon", State: StateEnabled, Settled: true,
		Mode: "system-ram", TargetNode: &node, TotalMemblocks: 1, OnlineMemblocks: 1, OnlineMemoryBytes: 128 << 20, Movable: true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DecodeRegion (-want +got):\n%s", diff)
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
	}
	st, err := DecodeStatus(mgr, objs)
	if err != nil {
		t.Fatal(err)
	}
	want := Status{Version: "v1", GuardActive: true, GuardQueue: 2, Simulated: true, KernelFeatures: []string{"create_pmem_region"}, Regions: 1,
		RootDecoders: []RootDecoder{{Decoder: "decoder0.0", Port: "root0", Size: 1 << 30, MaxAvailableExtent: 1 << 29,
			PmemCapable: true, InterleaveWays: 1, InterleaveGranularity: 256, Targets: []string{"pci0000:0c"},
			Frozen: true, FrozenReason: "cxl_acpi unbound", QueueDepth: 3}}}
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
