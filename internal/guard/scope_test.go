package guard

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// TestDriverFileTakesEveryWriter: which region an open of cxl_region/bind
// will name is unknown at open time, so the open waits for every root
// decoder's writer and, while held, keeps the daemon off all of them.
//
// Mutation: make scope return only the first root decoder and the open
// goes through while decoder1.0's writer is held ("bind got past").
func TestDriverFileTakesEveryWriter(t *testing.T) {
	r := newRig(t, []string{"decoder0.0", "decoder1.0"}, nil)
	bind := filepath.Join(r.root, sysfs.RegionBindPath)

	h, err := r.writer("decoder1.0").Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := r.startWriter(bind, "bind", time.Millisecond, 1)
	r.assertNotOpened("bind", 150*time.Millisecond)
	released := monoNow()
	h.Release()
	p.wait(t, 3*time.Second)
	if e, _ := find(readLog(t, r.log), "bind", "open"); e.at < released {
		t.Fatal("bind opened before decoder1.0's writer was free")
	}

	holder := r.startWriter(bind, "holder", 200*time.Millisecond, 1)
	r.waitOpened("holder")
	var wg sync.WaitGroup
	for _, rd := range []string{"decoder0.0", "decoder1.0"} {
		wg.Go(func() {
			if err := r.daemonWrite(rd, "delete_region", "daemon-"+rd, time.Millisecond); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	holder.wait(t, 3*time.Second)
	es := readLog(t, r.log)
	closed, _ := find(es, "holder", "close")
	for _, rd := range []string{"decoder0.0", "decoder1.0"} {
		if e, _ := find(es, "daemon-"+rd, "open"); e.at < closed.at {
			t.Errorf("the daemon wrote under %s while another process held cxl_region/bind", rd)
		}
	}
	// Whether the first open is labelled waited or allowed depends on when
	// the guard read its event (under load, possibly after the release);
	// the order of opens above is what proves it waited.
	r.obs.settle()
	if n := r.obs.count("cxl_region_driver", ResultWaited) + r.obs.count("cxl_region_driver", ResultAllowed); n != 2 {
		t.Errorf("observer saw %d allowed bind opens, want 2 (%s)", n, r.obs)
	}
}

// TestDeleteWaitsForSettled: an open of delete_region is held until the
// root decoder's regions have settled (deleting a pmem region whose nd
// side is still registering oopses the kernel); create_*_region is not.
// A settle that fails refuses the open.
//
// Mutation: drop the Settled call in admit and "delete" opens before
// settled is closed.
func TestDeleteWaitsForSettled(t *testing.T) {
	gate := newSettleGate()
	r := newRig(t, []string{"decoder0.0"}, func(c *Config) { c.Settled = gate.settled })

	r.startWriter(r.path("decoder0.0", "create_pmem_region"), "create", time.Millisecond, 1).wait(t, 3*time.Second)
	if calls := gate.calls(); len(calls) != 0 {
		t.Errorf("create_pmem_region waited for settle: %v", calls)
	}

	del := r.startWriter(r.path("decoder0.0", "delete_region"), "delete", time.Millisecond, 1)
	r.assertNotOpened("delete", 150*time.Millisecond)
	at := monoNow()
	gate.open()
	del.wait(t, 3*time.Second)
	if e, _ := find(readLog(t, r.log), "delete", "open"); e.at < at {
		t.Fatal("delete_region opened before the regions settled")
	}
	if calls := gate.calls(); len(calls) != 1 || calls[0] != "decoder0.0" {
		t.Errorf("Settled calls %v, want [decoder0.0]", calls)
	}
	gate.failFromNow()

	r.startWriter(r.path("decoder0.0", "delete_region"), "unsettled", time.Millisecond, 1).wait(t, 3*time.Second)
	if e, ok := find(readLog(t, r.log), "unsettled", "refused"); !ok || e.extra != "EPERM" {
		t.Fatalf("an open whose regions did not settle was not refused with EPERM: %+v", e)
	}
	if !strings.Contains(r.logs.String(), "region4 not settled") {
		t.Error("the refusal's log line does not say why")
	}
}

// TestUnbindWaitsForSettled: an open of an unbind file (here cxl_acpi's,
// which tears down every region) is held until the regions of every root
// decoder have settled: the kernel's auto-assembly and the nd registration
// after a bind take no writer, and a teardown of a pmem region whose nd
// region is still registering oopses, whichever store does it (the soak
// hit it with cxl_acpi's unbind under every writer). An open of a bind
// file does not wait. A settle that fails refuses the open.
//
// Mutation: drop "|| t.Teardown" in admit and "unbind" opens before
// settled is closed; in SysfsTargets mark the bind files as teardowns and
// "bind" waits for settle.
func TestUnbindWaitsForSettled(t *testing.T) {
	gate := newSettleGate()
	r := newRig(t, []string{"decoder0.0", "decoder1.0"}, func(c *Config) { c.Settled = gate.settled })

	r.startWriter(filepath.Join(r.root, sysfs.RegionBindPath), "bind", time.Millisecond, 1).wait(t, 3*time.Second)
	if calls := gate.calls(); len(calls) != 0 {
		t.Errorf("cxl_region/bind waited for settle: %v", calls)
	}

	unbind := r.startWriter(filepath.Join(r.root, sysfs.ACPIUnbindPath), "unbind", time.Millisecond, 1)
	r.assertNotOpened("unbind", 150*time.Millisecond)
	at := monoNow()
	gate.open()
	unbind.wait(t, 3*time.Second)
	if e, _ := find(readLog(t, r.log), "unbind", "open"); e.at < at {
		t.Fatal("cxl_acpi/unbind opened before the regions settled")
	}
	if calls, want := gate.calls(), []string{"decoder0.0", "decoder1.0"}; !slices.Equal(calls, want) {
		t.Errorf("Settled calls %v, want %v", calls, want)
	}
	gate.failFromNow()

	r.startWriter(filepath.Join(r.root, sysfs.RegionUnbindPath), "unsettled", time.Millisecond, 1).wait(t, 3*time.Second)
	if e, ok := find(readLog(t, r.log), "unsettled", "refused"); !ok || e.extra != "EPERM" {
		t.Fatalf("an unbind whose regions did not settle was not refused with EPERM: %+v", e)
	}
	if !strings.Contains(r.logs.String(), "region4 not settled") {
		t.Error("the refusal's log line does not say why")
	}
}

// TestFrozenWriter: a root decoder whose writer is frozen (its root is
// being torn down) refuses opens of its own files at once, while a driver
// file skips it, so that rebinding cxl_acpi is never held hostage, and
// still takes the other writers.
//
// Mutation: in acquire, refuse on ErrWriterFrozen for driver files too
// and the cxl_acpi/unbind open is refused ("timed out waiting for acpi").
func TestFrozenWriter(t *testing.T) {
	r := newRig(t, []string{"decoder0.0", "decoder1.0"}, nil)
	r.writer("decoder0.0").Freeze(errors.New("cxl_acpi unbind"))

	start := monoNow()
	r.startWriter(r.path("decoder0.0", "delete_region"), "delete", time.Millisecond, 1).wait(t, 3*time.Second)
	e, ok := find(readLog(t, r.log), "delete", "refused")
	if !ok || e.extra != "EPERM" {
		t.Fatalf("delete_region of a frozen root decoder was not refused: %+v", e)
	}
	if d := time.Duration(e.at - start); d > 2*time.Second {
		t.Errorf("refused only after %v: it waited instead of failing at once", d)
	}

	holder := r.startWriter(filepath.Join(r.root, sysfs.ACPIUnbindPath), "acpi", 200*time.Millisecond, 1)
	r.waitOpened("acpi")
	if err := r.daemonWrite("decoder1.0", "delete_region", "daemon", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	holder.wait(t, 3*time.Second)
	es := readLog(t, r.log)
	closed, _ := find(es, "acpi", "close")
	if d, _ := find(es, "daemon", "open"); d.at < closed.at {
		t.Error("the daemon wrote under decoder1.0 while cxl_acpi/unbind was held")
	}
}

// settleGate is a Config.Settled for the settle tests: it records each root
// decoder asked about, holds the caller until open, and from failFromNow
// on answers "region4 not settled" at once.
type settleGate struct {
	opened chan struct{}
	mu     sync.Mutex // guards asked and fail
	asked  []string
	fail   bool
}

func newSettleGate() *settleGate { return &settleGate{opened: make(chan struct{})} }

func (g *settleGate) settled(ctx context.Context, rd string) error {
	g.mu.Lock()
	g.asked = append(g.asked, rd)
	fail := g.fail
	g.mu.Unlock()
	if fail {
		return errors.New("region4 not settled")
	}
	select {
	case <-g.opened:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *settleGate) open() { close(g.opened) }

func (g *settleGate) calls() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.asked)
}

func (g *settleGate) failFromNow() {
	g.mu.Lock()
	g.fail = true
	g.mu.Unlock()
}
