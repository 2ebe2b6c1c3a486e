package region

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/cxlsim"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// TestDeleteWaitsForForeignBind: another tool creates and binds a pmem
// region; a delete issued at once must wait until libnvdimm has registered
// the nd region, or the unpatched kernel oopses (guarantee 4).
//
// Mutation: make settledLocked return nil and the simulated kernel prints
// "BUG: kernel NULL pointer dereference".
func TestDeleteWaitsForForeignBind(t *testing.T) {
	h := newHarness(t)
	eng := h.start(nil)
	ctx := context.Background()
	for range 5 {
		name := h.rawCreate("decoder0.0", "pmem", 256<<20, []string{"decoder3.0"}, true)
		start := time.Now()
		if err := eng.Delete(ctx, DeleteRequest{Name: name}); err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
		if time.Since(start) < 20*time.Millisecond {
			t.Fatalf("delete of a just-bound region returned in %v: it did not wait for the nd region", time.Since(start))
		}
		h.requireClean()
		if err := h.fs.Write("bus/cxl/devices/decoder3.0/dpa_size", "0"); err != nil && !isErr(err, nil) {
			// Already freed by the daemon's cleanup: fine.
			_ = err
		}
	}
}

// TestDeleteOfUnsettledForeignRegionTimesOutBusy: a region another tool is
// still configuring is not deleted before the settle window; a caller with
// a shorter deadline gets Busy and nothing is written.
func TestDeleteOfUnsettledForeignRegionTimesOutBusy(t *testing.T) {
	h := newHarness(t)
	eng := h.start(func(c *Config) { c.SettleWindow = 2 * time.Second })
	name, err := h.fs.NextRegionName("decoder0.0", "pmem")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.fs.Write("bus/cxl/devices/decoder0.0/create_pmem_region", name); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := eng.Delete(ctx, DeleteRequest{Name: name}); !isErr(err, ErrBusy) {
		t.Fatalf("delete of an unsettled region = %v, want Busy", err)
	}
	if got := h.k.Writes("decoder0.0/delete_region"); got != 0 {
		t.Fatalf("%d delete_region writes for an unsettled region", got)
	}
	// Once it has stayed unchanged for the window, the delete goes through.
	if err := eng.Delete(context.Background(), DeleteRequest{Name: name}); err != nil {
		t.Fatal(err)
	}
	h.requireClean()
}

// TestDeleteDuringAutoAssembly: deletes requested while the kernel is still
// assembling a region (race 3) wait until it has settled, then succeed;
// the kernel prints no BUG.
//
// Mutation: make settledLocked return nil and the delete lands inside the
// assembly: the simulated kernel prints a KASAN use-after-free.
func TestDeleteDuringAutoAssembly(t *testing.T) {
	h := newHarness(t)
	// A settle window well past the assembly's 100 ms: with the harness's
	// 150 ms, a -race run starved for a tenth of a second between two of
	// the assembly's steps saw a quiet window and deleted mid-assembly
	// (about 1 run in 30 on the loaded 2-core machine).
	eng := h.start(func(c *Config) { c.SettleWindow = time.Second })
	ctx := context.Background()
	assembled := make(chan error, 1)
	go func() {
		_, err := h.k.AutoAssemble(ctx, cxlsim.AssembleSpec{
			RootDecoder: "decoder0.0", Mode: "pmem", Targets: []string{"decoder3.0"}, Size: 256 << 20,
			Duration: 100 * time.Millisecond,
		})
		assembled <- err
	}()
	var name string
	waitFor(t, "the kernel to start assembling", func() bool {
		regs := eng.Regions()
		if len(regs) == 1 {
			name = regs[0].Name
		}
		return name != ""
	})
	errs := make(chan error, 10)
	for range 10 {
		go func() { errs <- eng.Delete(ctx, DeleteRequest{Name: name}) }()
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Fatalf("delete during assembly: %v", err)
		}
	}
	if err := <-assembled; err != nil {
		t.Fatalf("assembly was disturbed: %v", err)
	}
	if got := h.k.Writes("decoder0.0/delete_region"); got != 1 {
		t.Fatalf("delete_region writes = %d, want 1", got)
	}
	h.requireClean()
}

// TestWaitRootSettledBeforeACPIUnbind: WaitRootSettled, which the guard
// calls before another process's delete_region or unbind open goes
// through, covers what the kernel does without any writer: a region
// still being auto-assembled and the nd registration after its bind. An
// operator's cxl_acpi unbind let through after it tears the region down
// cleanly; the same unbind 0 ms after the assembly's bind (the soak's
// BUG, taken with every writer held but no settle wait) oopses in
// kill_device. Both in one kernel: the baseline first.
//
// Mutation: drop the NDRegionBound case in settledLocked and the second
// unbind oopses too ("BUG after the settle wait").
func TestWaitRootSettledBeforeACPIUnbind(t *testing.T) {
	h := newHarness(t, cxlsim.WithRegisterDelay(300*time.Millisecond))
	eng := h.start(nil)
	ctx := context.Background()
	spec := cxlsim.AssembleSpec{RootDecoder: "decoder0.0", Mode: "pmem", Targets: []string{"decoder3.0"}, Size: 256 << 20,
		Duration: 100 * time.Millisecond}

	// Baseline: unbind as soon as the assembly has bound the region.
	if _, err := h.k.AutoAssemble(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := h.fs.Write(sysfs.ACPIUnbindPath, "ACPI0017:00"); !errors.Is(err, cxlsim.ErrKernelOops) {
		t.Fatalf("baseline: cxl_acpi unbind during the nd registration: %v, want the oops", err)
	}
	if _, bug := h.counts(); bug != 1 {
		t.Fatalf("baseline: %d BUG, want 1", bug)
	}
	if err := h.fs.Write(sysfs.ACPIBindPath, "ACPI0017:00"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "decoder3.0 to come back", func() bool { return freeDecoderOn(h, "port1") == "decoder3.0" })

	// The guard's order: the unbind waits for WaitRootSettled, which is
	// asked while the kernel is still assembling.
	assembled := make(chan error, 1)
	go func() {
		_, err := h.k.AutoAssemble(ctx, spec)
		assembled <- err
	}()
	waitFor(t, "the kernel to start assembling", func() bool {
		topo, err := h.fs.Scan()
		return err == nil && len(topo.Regions) == 1
	})
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, rd := range eng.RootDecoders() {
		if err := eng.WaitRootSettled(waitCtx, rd.Name); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-assembled; err != nil {
		t.Fatalf("the assembly had not finished when its root settled: %v", err)
	}
	if err := h.fs.Write(sysfs.ACPIUnbindPath, "ACPI0017:00"); err != nil {
		t.Fatalf("cxl_acpi unbind after the settle wait: %v", err)
	}
	if _, bug := h.counts(); bug != 1 {
		t.Fatalf("BUG after the settle wait (%d in all):\n%s", bug, lastLines(h.k.Log(), 40))
	}
}
