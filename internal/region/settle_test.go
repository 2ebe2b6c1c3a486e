package region

import (
	"context"
	"testing"
	"time"
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
