package region

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// TestUnbindRootDuringDeletes: cxl_acpi is unbound while 100 deletes are
// queued and one is inside the kernel (guarantee 3). The unbind goes
// through the writers first, as the guard makes every opener of
// cxl_acpi/unbind do, so the delete in flight finishes before the teardown
// starts; afterwards the writers are frozen, queued deletes fail Frozen or
// NotFound without any write, and the model shows the regions gone. A
// rebind thaws the writers and a new create works.
//
// Mutation: remove the root check in deleteUnderWriter (checkRoot) and the
// queued deletes write to a torn-down root: writes appear after the unbind.
func TestUnbindRootDuringDeletes(t *testing.T) {
	h := newHarness(t)
	eng := h.start(nil)
	ctx := context.Background()
	var regions []RegionInfo
	for range 4 {
		r, err := eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20})
		if err != nil {
			t.Fatal(err)
		}
		regions = append(regions, r)
	}
	// Slow deletes down inside the kernel so that one is in flight.
	h.k.InjectDelay("delete_region", 200*time.Millisecond)

	errs := make(chan error, 100)
	var wg sync.WaitGroup
	deleteAll := func(from, to int) {
		for i := from; i < to; i++ {
			r := regions[i%len(regions)]
			wg.Go(func() { errs <- eng.Delete(ctx, DeleteRequest{Name: r.Name, Generation: r.Generation}) })
		}
	}
	// Half the requests (for regions 0 and 1) are in line before the
	// unbind, one of them inside the kernel.
	for i := range 50 {
		r := regions[i%2]
		wg.Go(func() { errs <- eng.Delete(ctx, DeleteRequest{Name: r.Name, Generation: r.Generation}) })
	}
	waitFor(t, "a delete inside the kernel", func() bool { return h.k.Writes("decoder0.0/delete_region") >= 1 })

	// The guard's behaviour for an open of cxl_acpi/unbind: take every
	// writer, in name order, in line with the daemon's own operations.
	w0, err := h.writers.Writer("decoder0.0")
	if err != nil {
		t.Fatal(err)
	}
	depth := w0.QueueDepth()
	acquired := make(chan []*lock.Held, 1)
	go func() {
		var held []*lock.Held
		for _, rd := range eng.RootDecoders() {
			w, err := h.writers.Writer(rd.Name)
			if err != nil {
				t.Error(err)
			}
			hd, err := w.Acquire(ctx)
			if err != nil {
				t.Error(err)
			}
			held = append(held, hd)
		}
		acquired <- held
	}()
	waitFor(t, "the unbind to queue behind the deletes", func() bool { return w0.QueueDepth() > depth || len(acquired) > 0 })
	// The other half arrives while the unbind waits: they queue behind it.
	deleteAll(50, 100)
	held := <-acquired
	if err := h.fs.Write(sysfs.ACPIUnbindPath, "ACPI0017:00"); err != nil {
		t.Fatal(err)
	}
	writesAtUnbind := h.k.Writes("")
	for _, hd := range held {
		hd.Release()
	}
	wg.Wait()
	close(errs)
	ok, frozenOrGone := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case isErr(err, ErrFrozen), isErr(err, ErrNotFound):
			frozenOrGone++
		default:
			t.Errorf("delete: unexpected error %v", err)
		}
	}
	if frozenOrGone == 0 {
		t.Errorf("no delete was refused after the unbind (%d ok)", ok)
	}
	if got := h.k.Writes(""); got != writesAtUnbind {
		t.Fatalf("%d writes reached the kernel after the unbind:\n%s", got-writesAtUnbind, lastLines(h.k.Log(), 20))
	}
	h.requireClean()
	waitFor(t, "the model to show every region gone", func() bool { return len(eng.Regions()) == 0 })
	if frozen, _ := w0.Frozen(); !frozen {
		t.Fatal("decoder0.0's writer is not frozen after its root went away")
	}
	if _, err := eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20}); err == nil {
		t.Fatal("create succeeded on a torn-down root")
	}

	h.k.InjectDelay("delete_region", 0)
	if err := h.fs.Write(sysfs.ACPIBindPath, "ACPI0017:00"); err != nil {
		t.Fatal(err)
	}
	var created RegionInfo
	waitFor(t, "a create to work after the rebind", func() bool {
		var err error
		created, err = eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20})
		return err == nil
	})
	if frozen, _ := w0.Frozen(); frozen {
		t.Fatal("writer still frozen after the root came back")
	}
	if err := eng.Delete(ctx, DeleteRequest{Name: created.Name}); err != nil {
		t.Fatal(err)
	}
	h.requireClean()
}
