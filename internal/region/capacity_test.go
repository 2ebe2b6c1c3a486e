package region

import (
	"context"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cxlregion/cxlregiond/internal/cxlsim"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// onBothProfiles runs a capacity sequence on the 6.1 and 6.12 models,
// whose host bridge decoder choice differs (cxlsim's switchDecoderFor).
func onBothProfiles(t *testing.T, run func(t *testing.T, h *harness)) {
	for _, profile := range []string{cxlsim.Profile61, cxlsim.Profile612} {
		t.Run(profile, func(t *testing.T) { run(t, newHarness(t, cxlsim.WithProfile(profile))) })
	}
}

// failedWrites lists the writes the simulated kernel refused since the log
// held from lines: a create the planner should have refused shows here.
func failedWrites(h *harness, from int) []string {
	var out []string
	for _, l := range h.k.Log()[from:] {
		if strings.Contains(l, "cxlsim: write ") && !strings.HasSuffix(l, "-> ok") {
			out = append(out, l)
		}
	}
	return out
}

// requireAllFreed checks that every endpoint decoder's capacity is back.
func requireAllFreed(t *testing.T, h *harness) {
	t.Helper()
	topo, err := h.fs.Scan()
	if err != nil {
		t.Fatal(err)
	}
	for _, ed := range topo.EndpointDecoders {
		if ed.DPASize != 0 || ed.Region != "" {
			t.Errorf("%s (%s) still holds %d bytes (region %q)", ed.Name, ed.Memdev, ed.DPASize, ed.Region)
		}
	}
}

// TestDeleteLowerRegionThenCreate is the first new-user sequence:
// two 256 MiB regions on one memdev, delete the lower one, then create
// 512 MiB in the same window. The kernel cannot free the lower decoder's
// capacity (not the top) and its host bridge decoder is free below a
// committed one: the create must be placed where the kernel accepts it or
// refused as Busy naming the rule, never fail at a kernel write; the
// stranded capacity must be visible and given back when the upper region
// goes.
func TestDeleteLowerRegionThenCreate(t *testing.T) { onBothProfiles(t, deleteLowerRegionThenCreate) }

func deleteLowerRegionThenCreate(t *testing.T, h *harness) {
	eng := h.start(nil)
	ctx := context.Background()
	create := func(size uint64) (RegionInfo, error) {
		return eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: size, NoBind: true})
	}
	r1, err := create(256 << 20)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := create(256 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Memdevs[0] != r2.Memdevs[0] {
		t.Fatalf("regions on %s and %s: the sequence needs one memdev", r1.Memdevs[0], r2.Memdevs[0])
	}
	if err := eng.Delete(ctx, DeleteRequest{Name: r1.Name}); err != nil {
		t.Fatalf("delete of the lower region: %v", err)
	}
	mc := memdevCapacity(t, eng, r1.Memdevs[0])
	if mc.Stranded != 256<<20 {
		t.Fatalf("%s: stranded %d bytes after deleting %s, want 256 MiB: %+v", r1.Memdevs[0], mc.Stranded, r1.Name, mc)
	}
	rd, err := eng.RootDecoder("decoder0.0")
	if err != nil {
		t.Fatal(err)
	}
	mark := len(h.k.Log())
	r3, err := create(512 << 20)
	if bad := failedWrites(h, mark); len(bad) != 0 {
		t.Fatalf("create failed at a kernel write the planner could have foreseen (%v):\n%s", err, strings.Join(bad, "\n"))
	}
	switch {
	case err == nil:
		if rd.FreeCapacity < 512<<20 {
			t.Errorf("status said %d bytes free, but a 512 MiB create succeeded", rd.FreeCapacity)
		}
		if err := eng.Delete(ctx, DeleteRequest{Name: r3.Name}); err != nil {
			t.Fatal(err)
		}
	case isErr(err, ErrBusy):
		t.Logf("refused: %v", err)
		if !strings.Contains(err.Error(), "order") {
			t.Errorf("refusal does not name the rule: %v", err)
		}
		if rd.FreeCapacity >= 512<<20 {
			t.Errorf("status said %d bytes free, but a 512 MiB create was refused: %v", rd.FreeCapacity, err)
		}
	default:
		t.Fatalf("create after the lower delete: %v, want success or Busy", err)
	}
	if err := eng.Delete(ctx, DeleteRequest{Name: r2.Name}); err != nil {
		t.Fatal(err)
	}
	requireAllFreed(t, h)
	if mc := memdevCapacity(t, eng, r1.Memdevs[0]); mc.Stranded != 0 || mc.Free != mc.Total {
		t.Errorf("after every delete: %+v", mc)
	}
	h.requireClean()
}

// TestCreateBelowAnotherRegionsHPA is the second sequence: pmem in
// decoder0.0, ram in decoder0.2 and decoder0.3, then a create in
// decoder0.1, whose window lies below the ram regions on the same ports
// (HPA order violation in the kernel).
// ram regions need 6.3+, so this runs on the 6.12 model.
func TestCreateBelowAnotherRegionsHPA(t *testing.T) {
	createBelowAnotherRegionsHPA(t, newHarness(t, cxlsim.WithProfile(cxlsim.Profile612)))
}

func createBelowAnotherRegionsHPA(t *testing.T, h *harness) {
	eng := h.start(nil)
	ctx := context.Background()
	var made []string
	for _, tt := range []struct {
		root, typ string
		size      uint64
	}{
		{"decoder0.0", "pmem", 256 << 20},
		{"decoder0.2", "ram", 256 << 20},
		{"decoder0.3", "ram", 512 << 20},
	} {
		r, err := eng.Create(ctx, CreateRequest{RootDecoder: tt.root, Type: tt.typ, Size: tt.size, NoBind: true})
		if err != nil {
			t.Fatalf("create on %s: %v", tt.root, err)
		}
		made = append(made, r.Name)
	}
	mark := len(h.k.Log())
	r, err := eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.1", Type: "pmem", Size: 512 << 20, NoBind: true})
	if bad := failedWrites(h, mark); len(bad) != 0 {
		t.Fatalf("create failed at a kernel write the planner could have foreseen (%v):\n%s", err, strings.Join(bad, "\n"))
	}
	switch {
	case err == nil:
		made = append(made, r.Name)
	case isErr(err, ErrBusy):
		t.Logf("refused: %v", err)
		if !strings.Contains(err.Error(), "HPA order") {
			t.Errorf("refusal does not name the HPA order rule: %v", err)
		}
	default:
		t.Fatalf("create in decoder0.1: %v, want success or Busy", err)
	}
	for _, name := range made {
		if err := eng.Delete(ctx, DeleteRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	requireAllFreed(t, h)
	h.requireClean()
}

func memdevCapacity(t *testing.T, eng *Engine, memdev string) MemdevCapacity {
	t.Helper()
	caps, err := eng.Capacity()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range caps {
		if c.Memdev == memdev {
			return c
		}
	}
	t.Fatalf("no capacity for %s in %+v", memdev, caps)
	return MemdevCapacity{}
}

// TestStrandedSurvivesRestart: stranded capacity is read from sysfs, so a
// restarted daemon shows it and gives it back when the region above it
// goes.
func TestStrandedSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	eng := h.start(nil)
	ctx := context.Background()
	var made []RegionInfo
	for range 3 {
		r, err := eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20, NoBind: true})
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, r)
	}
	for _, r := range made[:2] {
		if err := eng.Delete(ctx, DeleteRequest{Name: r.Name}); err != nil {
			t.Fatal(err)
		}
	}
	h.shutdown()
	eng = h.start(nil)
	mc := memdevCapacity(t, eng, made[0].Memdevs[0])
	if mc.Stranded != 512<<20 {
		t.Fatalf("after a restart: %+v, want 512 MiB stranded", mc)
	}
	var stranded []string
	for _, d := range mc.Decoders {
		if d.Stranded {
			stranded = append(stranded, d.Name)
		}
	}
	if want := []string{made[0].Targets[0], made[1].Targets[0]}; strings.Join(stranded, " ") != strings.Join(want, " ") {
		t.Errorf("stranded decoders %v, want %v", stranded, want)
	}
	if err := eng.Delete(ctx, DeleteRequest{Name: made[2].Name}); err != nil {
		t.Fatal(err)
	}
	requireAllFreed(t, h)
	h.requireClean()
}

// TestFreeCapacityFollowsOperations: a root decoder's FreeCapacity is
// worked out once per reading of the topology and kept (Engine.freeCap);
// after each create and delete it must be what a plan over a fresh
// reading of sysfs says, not the kept answer of the reading before.
func TestFreeCapacityFollowsOperations(t *testing.T) {
	h := newHarness(t)
	eng := h.start(nil)
	ctx := context.Background()
	check := func(when string) {
		t.Helper()
		topo, err := h.fs.Scan()
		if err != nil {
			t.Fatal(err)
		}
		for _, rd := range topo.RootDecoders {
			info, err := eng.RootDecoder(rd.Name)
			if err != nil {
				t.Fatal(err)
			}
			if want := largestCreate(topo, rd); info.FreeCapacity != want {
				t.Errorf("%s: %s FreeCapacity %d, a plan over sysfs says %d", when, rd.Name, info.FreeCapacity, want)
			}
		}
	}
	check("at start")
	// Fill decoder0.0 until it is full, so that its free capacity changes.
	start, err := eng.RootDecoder("decoder0.0")
	if err != nil {
		t.Fatal(err)
	}
	var made []RegionInfo
	for i := range 64 {
		r, err := eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20, NoBind: true})
		if err != nil {
			t.Logf("create %d: %v", i+1, err)
			break
		}
		made = append(made, r)
		check("after create " + strconv.Itoa(i+1))
	}
	if full, err := eng.RootDecoder("decoder0.0"); err != nil || full.FreeCapacity == start.FreeCapacity {
		t.Fatalf("decoder0.0 free capacity %d before %d creates and %d after (%v): the test needs it to change", start.FreeCapacity, len(made), full.FreeCapacity, err)
	}
	for _, r := range made {
		if err := eng.Delete(ctx, DeleteRequest{Name: r.Name}); err != nil {
			t.Fatal(err)
		}
		check("after deleting " + r.Name)
	}
}

// TestRegionMemdevsFollowTopology: a region's Memdevs (its targets'
// memdevs, looked up in an index kept per topology reading) are what a
// fresh reading of sysfs says, for regions of other tools read at startup
// and for the daemon's own after creates and deletes.
func TestRegionMemdevsFollowTopology(t *testing.T) {
	h := newHarness(t)
	for _, ep := range []string{"decoder3.0", "decoder4.0"} {
		h.rawCreate("decoder0.0", "pmem", 256<<20, []string{ep}, false)
	}
	eng := h.start(nil)
	ctx := context.Background()
	check := func(when string) {
		t.Helper()
		topo, err := h.fs.Scan()
		if err != nil {
			t.Fatal(err)
		}
		memdev := map[string]string{}
		for _, ed := range topo.EndpointDecoders {
			memdev[ed.Name] = ed.Memdev
		}
		regions := eng.Regions()
		if len(regions) == 0 {
			t.Fatalf("%s: no regions", when)
		}
		for _, r := range regions {
			if len(r.Memdevs) != len(r.Targets) {
				t.Fatalf("%s: %s targets %v, memdevs %v", when, r.Name, r.Targets, r.Memdevs)
			}
			for i, target := range r.Targets {
				if r.Memdevs[i] == "" || r.Memdevs[i] != memdev[target] {
					t.Errorf("%s: %s target %s: memdev %q, sysfs says %q", when, r.Name, target, r.Memdevs[i], memdev[target])
				}
			}
		}
	}
	check("at start")
	r, err := eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20, NoBind: true})
	if err != nil {
		t.Fatal(err)
	}
	check("after a create")
	if err := eng.Delete(ctx, DeleteRequest{Name: r.Name}); err != nil {
		t.Fatal(err)
	}
	check("after a delete")
}

// TestMemdevCapacitiesGroupsByMemdev: memdevCapacities, which groups the
// endpoint decoders by memdev in one pass, gives what a walk of every
// endpoint decoder per memdev gives, on a topology with regions, stranded
// capacity and free decoders.
func TestMemdevCapacitiesGroupsByMemdev(t *testing.T) {
	h := newHarness(t)
	r1 := h.rawCreate("decoder0.0", "pmem", 256<<20, []string{"decoder3.0"}, false)
	h.rawCreate("decoder0.0", "pmem", 256<<20, []string{"decoder3.1"}, false)
	h.rawCreate("decoder0.0", "pmem", 256<<20, []string{"decoder4.0"}, false)
	root, err := sysfs.DeviceAttr("decoder0.0", "delete_region")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.fs.Write(root, r1); err != nil { // decoder3.0 keeps its DPA: stranded
		t.Fatal(err)
	}
	topo, err := h.fs.Scan()
	if err != nil {
		t.Fatal(err)
	}
	var want []MemdevCapacity
	for _, m := range topo.Memdevs {
		mc := MemdevCapacity{Memdev: m.Name, Total: m.RAMSize + m.PmemSize}
		for _, ed := range topo.EndpointDecoders {
			if ed.Memdev != m.Name {
				continue
			}
			dc := DecoderCapacity{Name: ed.Name, Memdev: ed.Memdev, Mode: ed.Mode, DPASize: ed.DPASize, Region: ed.Region, Stranded: isStranded(ed)}
			mc.Allocated += ed.DPASize
			if dc.Stranded {
				mc.Stranded += ed.DPASize
			}
			mc.Decoders = append(mc.Decoders, dc)
		}
		slices.SortFunc(mc.Decoders, func(a, b DecoderCapacity) int { return sysfs.CompareNames(a.Name, b.Name) })
		mc.Free = mc.Total - min(mc.Total, mc.Allocated)
		want = append(want, mc)
	}
	got := memdevCapacities(topo)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("memdevCapacities:\n got %+v\nwant %+v", got, want)
	}
	var stranded uint64
	for _, mc := range got {
		stranded += mc.Stranded
	}
	if stranded != 256<<20 {
		t.Errorf("stranded %d bytes in all, want 256 MiB (the test needs a stranded decoder)", stranded)
	}
}
