package cxlsim

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
	"github.com/cxlregion/cxlregiond/internal/sysfs/sysfstest"
)

// TestScanMatchesCapture: sysfs.Scan of the model and of the real kernel's
// tree (materialized from its capture) give the same Topology, in the
// bound state where the nd region is registered.
func TestScanMatchesCapture(t *testing.T) {
	for _, profile := range []string{Profile61, Profile612} {
		t.Run(profile, func(t *testing.T) {
			dir := "testdata/" + profile + "/sysfs/"
			real := sysfstest.Materialize(t, dir+"5-bound.txt",
				sysfstest.WithListing(dir+"5-bound-nd-dax-dev-listing.txt"),
				sysfstest.WithBound("nd", "region0", "nd_region"))
			want, err := real.Scan()
			if err != nil {
				t.Fatal(err)
			}
			k := newQEMU(t, profile)
			w := readLifecycle(t, "testdata/"+profile+"/lifecycle.log")
			for _, x := range w[:10] {
				mustWrite(t, k, x.path, x.value, x.result)
			}
			waitRegistered(t, k, "region0")
			got, err := sysfs.New(k).Scan()
			if err != nil {
				t.Fatal(err)
			}
			// The capture's uuid is the one lifecycle.log wrote: same value.
			// Inode numbers are the fixture tree's and the model's own.
			if d := cmp.Diff(want, got, cmpopts.IgnoreFields(sysfs.Region{}, "Ino")); d != "" {
				t.Errorf("Scan differs (-real kernel +model):\n%s", d)
			}
		})
	}
}

// TestScanDefaultTopology scans a busy default machine: a 2-way pmem
// region across both bridges (bound), a bound ram region with its dax
// region, and a half-configured region.
func TestScanDefaultTopology(t *testing.T) {
	k, err := New(WithRegisterDelay(0), WithDeleteDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	fs := sysfs.New(k)
	w := func(p, v string) {
		t.Helper()
		if err := fs.Write(dev+p, v); err != nil {
			t.Fatal(err)
		}
	}
	// decoder0.1: pmem, 2-way over port1 (mem0) and port2 (mem4).
	w("decoder0.1/create_pmem_region", "region1")
	w("region1/uuid", "11111111-2222-4333-8444-555555555555")
	w("region1/interleave_granularity", "256")
	w("region1/interleave_ways", "2")
	w("region1/size", "0x40000000")
	for _, ed := range []string{"decoder3.0", "decoder7.0"} {
		w(ed+"/mode", "pmem")
		w(ed+"/dpa_size", "0x20000000")
	}
	w("region1/target0", "decoder3.0")
	w("region1/target1", "decoder7.0")
	w("region1/commit", "1")
	if err := fs.Write(sysfs.RegionBindPath, "region1"); err != nil {
		t.Fatal(err)
	}
	// decoder0.2: ram, 1-way on port2 (mem5).
	w("decoder0.2/create_ram_region", "region2")
	w("region2/interleave_granularity", "256")
	w("region2/interleave_ways", "1")
	w("region2/size", "0x10000000")
	w("decoder8.0/mode", "ram")
	w("decoder8.0/dpa_size", "0x10000000")
	w("region2/target0", "decoder8.0")
	w("region2/commit", "1")
	if err := fs.Write(sysfs.RegionBindPath, "region2"); err != nil {
		t.Fatal(err)
	}
	// decoder0.0: a region with only ways set.
	w("decoder0.0/create_pmem_region", "region0")
	w("region0/interleave_ways", "2")
	waitRegistered(t, k, "region1")
	waitRegistered(t, k, "region2")

	top, err := fs.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Regions) != 3 || len(top.RootDecoders) != 4 || len(top.EndpointDecoders) != 32 || len(top.SwitchDecoders) != 8 || len(top.Memdevs) != 8 {
		t.Fatalf("scan counts: %d regions %d root %d endpoint %d switch decoders %d memdevs", len(top.Regions), len(top.RootDecoders), len(top.EndpointDecoders), len(top.SwitchDecoders), len(top.Memdevs))
	}
	start := uint64(0x490000000)
	wantR1 := sysfs.Region{Name: "region1", RootDecoder: "decoder0.1", Type: "pmem", UUID: "11111111-2222-4333-8444-555555555555",
		Size: 0x40000000, Resource: &start, InterleaveWays: 2, InterleaveGranularity: 256, Targets: []string{"decoder3.0", "decoder7.0"},
		Committed: true, Driver: "cxl_region", PmemRegion: "pmem_region1", NDRegion: "region1", NDRegionBound: true}
	if d := cmp.Diff(wantR1, top.Regions[1], cmpopts.IgnoreFields(sysfs.Region{}, "Ino")); d != "" {
		t.Errorf("region1 (-want +got):\n%s", d)
	}
	r2 := top.Regions[2]
	if r2.Type != "ram" || r2.DaxRegion != "dax_region2" || !r2.DaxRegionBound || r2.UUID != "" || r2.NDRegion != "" {
		t.Errorf("region2: %+v", r2)
	}
	r0 := top.Regions[0]
	if r0.InterleaveWays != 2 || len(r0.Targets) != 2 || r0.Targets[0] != "" || r0.Resource != nil || r0.Committed {
		t.Errorf("region0: %+v", r0)
	}
	if rd := top.RootDecoders[1]; len(rd.Targets) != 2 || rd.Targets[0] != "port1" || rd.Targets[1] != "port2" {
		t.Errorf("decoder0.1 targets %v", rd.Targets)
	}
	for _, ed := range top.EndpointDecoders {
		if ed.Name == "decoder7.0" && (ed.Memdev != "mem4" || ed.HostBridge != "port2" || ed.Region != "region1") {
			t.Errorf("decoder7.0: %+v", ed)
		}
	}
	for _, p := range append(top.Ports, top.Endpoints...) {
		if (p.Name == "port1" || p.Name == "endpoint3") && (p.DecodersCommitted == nil || *p.DecodersCommitted != 1) {
			t.Errorf("%s decoders_committed %v, want 1", p.Name, p.DecodersCommitted)
		}
	}
}
