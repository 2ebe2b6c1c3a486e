package sysfs_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
	"github.com/cxlregion/cxlregiond/internal/sysfs/sysfstest"
)

// Values of the captured QEMU topology (docs/kernel.md#captures), as the
// captures show them.
const (
	windowStart = 0x390000000 // decoder0.0/start
	windowSize  = 0x100000000 // decoder0.0/size
	regionSize  = 0x10000000  // region0/size, decoder2.0/dpa_size
	noDPA       = 0xffffffffffffffff
)

// regionUUID is region0/uuid of each capture that has one set.
var regionUUID = map[string]map[string]string{
	"6.1": {
		"3-configured":               "ace123d3-5295-4dd5-bfbf-fec8e999d9c3",
		"4-committed":                "ace123d3-5295-4dd5-bfbf-fec8e999d9c3",
		"5-bound":                    "ace123d3-5295-4dd5-bfbf-fec8e999d9c3",
		"6-unbound":                  "ace123d3-5295-4dd5-bfbf-fec8e999d9c3",
		"9-bound-before-acpi-unbind": "511c19a8-e3e4-4b6c-8fc9-e9e0df412626",
	},
	"6.12": {
		"3-configured":               "a6d0c8ec-a2fb-4202-a662-84d58654eeef",
		"4-committed":                "a6d0c8ec-a2fb-4202-a662-84d58654eeef",
		"5-bound":                    "a6d0c8ec-a2fb-4202-a662-84d58654eeef",
		"6-unbound":                  "a6d0c8ec-a2fb-4202-a662-84d58654eeef",
		"9-bound-before-acpi-unbind": "22d40114-68f0-4f79-9051-8a6537fa79b8",
	},
}

func ptr[T any](v T) *T { return &v }

// capture describes one captured state in the terms Scan decodes.
type capture struct {
	state string
	// cxl: root0, decoder0.0 and port1 exist (not after the cxl_acpi unbind).
	cxl bool
	// endpoint: endpoint2 and decoder2.0 exist.
	endpoint bool
	// region: "" (none), created, configured, committed or bound.
	region string
	// ed: decoder2.0's state: idle, attached, deleted (dpa still
	// allocated) or dpa0.
	ed string
	// sd: decoder1.0's state: idle, attached or stale (programmed for a
	// region that is gone), "" when absent.
	sd string
	// committed: port1/endpoint2 decoders_committed on kernels that have it.
	committed int
	// nextRegion: what create_pmem_region offers.
	nextRegion string
}

var captures = []capture{
	{state: "1-idle", cxl: true, endpoint: true, ed: "idle", sd: "idle", nextRegion: "region0"},
	{state: "2-created", cxl: true, endpoint: true, region: "created", ed: "idle", sd: "idle", nextRegion: "region1"},
	{state: "3-configured", cxl: true, endpoint: true, region: "configured", ed: "attached", sd: "attached", nextRegion: "region1"},
	{state: "4-committed", cxl: true, endpoint: true, region: "committed", ed: "attached", sd: "attached", committed: 1, nextRegion: "region1"},
	{state: "5-bound", cxl: true, endpoint: true, region: "bound", ed: "attached", sd: "attached", committed: 1, nextRegion: "region1"},
	{state: "6-unbound", cxl: true, endpoint: true, region: "committed", ed: "attached", sd: "attached", committed: 1, nextRegion: "region1"},
	{state: "7-deleted", cxl: true, endpoint: true, ed: "deleted", sd: "stale", nextRegion: "region0"},
	{state: "8-deleted-dpa0", cxl: true, endpoint: true, ed: "dpa0", sd: "stale", nextRegion: "region0"},
	{state: "9-bound-before-acpi-unbind", cxl: true, endpoint: true, region: "bound", ed: "attached", sd: "attached", committed: 1, nextRegion: "region1"},
	{state: "10-after-acpi-unbind"},
	{state: "11-after-acpi-rebind", cxl: true, sd: "idle", nextRegion: "region0"},
}

// want builds the Topology a capture must decode to.
func (c capture) want(kernel string) *sysfs.Topology {
	v612 := kernel == "6.12"
	var t sysfs.Topology
	mem := sysfs.Memdev{Name: "mem0", PmemSize: regionSize, NumaNode: -1}
	if c.endpoint {
		mem.Driver = "cxl_mem"
		mem.Endpoint = "endpoint2"
	}
	t.Memdevs = []sysfs.Memdev{mem}
	if !c.cxl {
		return &t
	}
	var committed *int
	if v612 { // decoders_committed arrived in v6.7
		committed = ptr(c.committed)
	}
	t.Roots = []sysfs.Root{{Name: "root0", Host: "ACPI0017:00", Dports: map[int]string{12: "port1"}}}
	port1 := sysfs.Port{Name: "port1", Parent: "root0", Driver: "cxl_port", DecodersCommitted: committed, Uport: "ACPI0016:00"}
	if v612 {
		port1.Uport = "pci0000:0c"
	}
	if c.state == "11-after-acpi-rebind" && v612 {
		port1.Driver = "" // 6.12 had not re-probed port1 within the capture's 3 s
	}
	t.Ports = []sysfs.Port{port1}
	rd := sysfs.RootDecoder{
		Name: "decoder0.0", Port: "root0", Start: ptr[uint64](windowStart), Size: windowSize,
		InterleaveWays: 1, InterleaveGranularity: 256,
		CapPmem: true, CapRAM: true, CapType2: true, CapType3: true,
		TargetList: []int{12}, Targets: []string{"port1"},
		CreatePmem: true, DeleteRegion: true,
	}
	if v612 { // create_ram_region arrived in v6.3, qos_class in v6.5
		rd.CreateRAM = true
		rd.QoSClass = ptr(0)
	}
	t.RootDecoders = []sysfs.RootDecoder{rd}

	// 6.12 did not re-add decoder1.0 within 3 s of the rebind.
	if c.sd != "" && !(v612 && c.state == "11-after-acpi-rebind") {
		sd := sysfs.SwitchDecoder{Name: "decoder1.0", Port: "port1", Start: ptr[uint64](0),
			InterleaveWays: 1, InterleaveGranularity: 256, TargetList: []int{0}, TargetType: "expander"}
		switch c.sd {
		case "idle":
			if !v612 {
				sd.InterleaveGranularity = 4096 // 6.1 shows the reset value
			}
		case "attached", "stale":
			sd.Start, sd.Size = ptr[uint64](windowStart), regionSize
			if c.sd == "attached" {
				sd.Region = "region0"
			}
		}
		t.SwitchDecoders = []sysfs.SwitchDecoder{sd}
	}
	if !c.endpoint {
		return &t
	}
	t.Endpoints = []sysfs.Port{{Name: "endpoint2", Parent: "port1", Driver: "cxl_port", DecodersCommitted: committed, Uport: "mem0"}}
	ed := sysfs.EndpointDecoder{Name: "decoder2.0", Port: "endpoint2", Memdev: "mem0", HostBridge: "port1", Start: ptr[uint64](0)}
	switch c.ed {
	case "idle":
		ed.Mode, ed.DPAResource = "none", noDPA
	case "attached":
		ed.Mode, ed.DPASize, ed.Start, ed.Size, ed.Region = "pmem", regionSize, ptr[uint64](windowStart), regionSize, "region0"
	case "deleted":
		ed.Mode, ed.DPASize = "pmem", regionSize
	case "dpa0":
		ed.Mode, ed.DPAResource = "pmem", noDPA
	}
	t.EndpointDecoders = []sysfs.EndpointDecoder{ed}
	if c.region == "" {
		return &t
	}
	reg := sysfs.Region{Name: "region0", RootDecoder: "decoder0.0", Type: "pmem", Targets: []string{}}
	if c.region != "created" {
		reg.UUID = regionUUID[kernel][c.state]
		reg.Size, reg.Resource = regionSize, ptr[uint64](windowStart)
		reg.InterleaveWays, reg.InterleaveGranularity = 1, 256
		reg.Targets = []string{"decoder2.0"}
	}
	if c.region == "committed" || c.region == "bound" {
		reg.Committed = true
	}
	if c.region == "bound" {
		reg.Driver, reg.PmemRegion = "cxl_region", "pmem_region0"
	}
	t.Regions = []sysfs.Region{reg}
	return &t
}

func capturePath(kernel, state string) string {
	return filepath.Join("testdata", kernel, state+".txt")
}

// ignoreIno leaves Region.Ino out of comparisons with hand-written or
// captured values: a fixture tree's inode numbers are its own.
var ignoreIno = cmpopts.IgnoreFields(sysfs.Region{}, "Ino")

// TestScanCaptures decodes every captured state of both kernels and
// compares the whole Topology with what the capture shows.
func TestScanCaptures(t *testing.T) {
	for _, kernel := range []string{"6.1", "6.12"} {
		for _, c := range captures {
			t.Run(kernel+"/"+c.state, func(t *testing.T) {
				fsys := sysfstest.Materialize(t, capturePath(kernel, c.state))
				got, err := fsys.Scan()
				if err != nil {
					t.Fatalf("Scan: %v", err)
				}
				// Inode numbers are the fixture tree's, not the capture's.
				if diff := cmp.Diff(c.want(kernel), got, ignoreIno); diff != "" {
					t.Errorf("Scan mismatch (-want +got):\n%s", diff)
				}
				for _, r := range got.Regions {
					if r.Ino == 0 {
						t.Errorf("%s: no inode number", r.Name)
					}
				}
			})
		}
	}
}

// TestScanNDRegion checks the nd side of a bound pmem region: absent
// without the nd bus, present but unbound from the listing alone, bound
// once nd_region's driver link exists (02-create-to-bind.txt shows the
// bind uevent with DRIVER=nd_region).
func TestScanNDRegion(t *testing.T) {
	for _, kernel := range []string{"6.1", "6.12"} {
		listing := sysfstest.WithListing(filepath.Join("testdata", kernel, "5-bound-nd-dax-dev-listing.txt"))
		tests := []struct {
			name      string
			opts      []sysfstest.Option
			wantND    string
			wantBound bool
		}{
			{"no nd bus", nil, "", false},
			{"nd region registered", []sysfstest.Option{listing}, "region0", false},
			{"nd region bound", []sysfstest.Option{listing, sysfstest.WithBound("nd", "region0", "nd_region")}, "region0", true},
		}
		for _, tt := range tests {
			t.Run(kernel+"/"+tt.name, func(t *testing.T) {
				topo, err := sysfstest.Materialize(t, capturePath(kernel, "5-bound"), tt.opts...).Scan()
				if err != nil {
					t.Fatalf("Scan: %v", err)
				}
				if len(topo.Regions) != 1 {
					t.Fatalf("regions: %+v", topo.Regions)
				}
				r := topo.Regions[0]
				if r.NDRegion != tt.wantND || r.NDRegionBound != tt.wantBound {
					t.Errorf("NDRegion, NDRegionBound = %q, %v; want %q, %v", r.NDRegion, r.NDRegionBound, tt.wantND, tt.wantBound)
				}
				if r.PmemRegion != "pmem_region0" || r.DaxRegion != "" || r.DaxRegionBound {
					t.Errorf("children: pmem %q dax %q bound %v", r.PmemRegion, r.DaxRegion, r.DaxRegionBound)
				}
			})
		}
	}
}

// TestScanSynthetic covers what the real captures cannot: a ram window
// over two host bridges, an endpoint below a switch, a bound ram region
// with its dax_region, v7.1's locked, natural order of region3/region10.
func TestScanSynthetic(t *testing.T) {
	got, err := sysfstest.Materialize(t, filepath.Join("testdata", "synthetic", "ram-2way.txt")).Scan()
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	one := ptr(1)
	want := &sysfs.Topology{
		Roots: []sysfs.Root{{Name: "root0", Host: "ACPI0017:00", Dports: map[int]string{12: "port1", 13: "port3"}}},
		Ports: []sysfs.Port{
			{Name: "port1", Parent: "root0", Driver: "cxl_port", DecodersCommitted: one, Uport: "pci0000:0c"},
			{Name: "port3", Parent: "root0", Driver: "cxl_port", DecodersCommitted: one, Uport: "pci0000:0d"},
			{Name: "port4", Parent: "port3", Driver: "cxl_port", DecodersCommitted: one, Uport: "0000:0e:00.0"},
		},
		Endpoints: []sysfs.Port{
			{Name: "endpoint2", Parent: "port1", Driver: "cxl_port", DecodersCommitted: one, Uport: "mem0"},
			{Name: "endpoint5", Parent: "port4", Driver: "cxl_port", DecodersCommitted: one, Uport: "mem1"},
		},
		RootDecoders: []sysfs.RootDecoder{{
			Name: "decoder0.1", Port: "root0", Start: ptr[uint64](0x4000000000), Size: 0x200000000,
			InterleaveWays: 2, InterleaveGranularity: 256, CapRAM: true, CapType3: true,
			TargetList: []int{12, 13}, Targets: []string{"port1", "port3"}, QoSClass: ptr(42),
			CreateRAM: true, DeleteRegion: true,
		}},
		SwitchDecoders: []sysfs.SwitchDecoder{{
			Name: "decoder4.0", Port: "port4", Start: ptr[uint64](0x4000000000), Size: 0x20000000,
			InterleaveWays: 1, InterleaveGranularity: 256, TargetList: []int{0}, TargetType: "expander", Region: "region3",
		}},
		EndpointDecoders: []sysfs.EndpointDecoder{
			{Name: "decoder2.0", Port: "endpoint2", Memdev: "mem0", HostBridge: "port1", Mode: "ram",
				DPASize: 0x10000000, Start: ptr[uint64](0x4000000000), Size: 0x20000000, Region: "region3"},
			// HostBridge is port3, not the parent switch port4.
			{Name: "decoder5.0", Port: "endpoint5", Memdev: "mem1", HostBridge: "port3", Mode: "ram",
				DPASize: 0x10000000, Start: ptr[uint64](0x4000000000), Size: 0x20000000, Region: "region3"},
			{Name: "decoder5.1", Port: "endpoint5", Memdev: "mem1", HostBridge: "port3", Mode: "none",
				DPAResource: noDPA, Start: ptr[uint64](0)},
		},
		Memdevs: []sysfs.Memdev{
			{Name: "mem0", RAMSize: 0x10000000, Serial: 1, NumaNode: 0, Driver: "cxl_mem", Endpoint: "endpoint2"},
			{Name: "mem1", RAMSize: 0x10000000, Serial: 2, NumaNode: 1, Driver: "cxl_mem", Endpoint: "endpoint5"},
		},
		Regions: []sysfs.Region{
			{Name: "region3", RootDecoder: "decoder0.1", Type: "ram", Size: 0x20000000, Resource: ptr[uint64](0x4000000000),
				InterleaveWays: 2, InterleaveGranularity: 256, Targets: []string{"decoder2.0", "decoder5.0"},
				Committed: true, Driver: "cxl_region", Locked: ptr(false), DaxRegion: "dax_region3", DaxRegionBound: true},
			{Name: "region10", RootDecoder: "decoder0.1", Type: "ram", Targets: []string{}},
		},
	}
	if diff := cmp.Diff(want, got, ignoreIno); diff != "" {
		t.Errorf("Scan mismatch (-want +got):\n%s", diff)
	}
}

// TestScanConcurrent runs many Scans of one tree at once: FS keeps no
// state between calls, so all must agree (and -race must stay quiet).
func TestScanConcurrent(t *testing.T) {
	fsys := sysfstest.Materialize(t, capturePath("6.12", "5-bound"))
	want, err := fsys.Scan()
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := make(chan error, n)
	for range n {
		go func() {
			got, err := fsys.Scan()
			if err == nil && !cmp.Equal(want, got) {
				err = fmt.Errorf("concurrent Scan differs: %s", cmp.Diff(want, got))
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func BenchmarkScan(b *testing.B) {
	fsys := sysfstest.Materialize(b, capturePath("6.12", "5-bound"),
		sysfstest.WithListing(filepath.Join("testdata", "6.12", "5-bound-nd-dax-dev-listing.txt")),
		sysfstest.WithBound("nd", "region0", "nd_region"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fsys.Scan(); err != nil {
			b.Fatal(err)
		}
	}
}
