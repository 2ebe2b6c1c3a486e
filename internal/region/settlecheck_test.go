package region

import (
	"context"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// TestSettleCheckAt: a region's SettleCheckAt is exactly the first moment
// at which the settle rule holds by time alone, and zero when only a
// change can make it hold. The service arms its one timer on it instead of
// re-reading the model every second, so a time too late leaves Settled
// false on the bus, and one too early or a zero where time would settle
// the region is a sync for nothing or none at all. Each case is checked
// against settledLocked itself, millisecond by millisecond.
//
// Mutation: make settleCheckAtLocked return the earlier of its two
// deadlines without asking the rule (a pmem region bound without its nd
// region then gets a time, where only its registration can settle it).
func TestSettleCheckAt(t *testing.T) {
	const window, quiet = 500 * time.Millisecond, 100 * time.Millisecond
	e := &Engine{settleWindow: window, boundQuiet: quiet}
	bound := func(reg sysfs.Region) sysfs.Region {
		reg.Committed, reg.Driver = true, "cxl_region"
		return reg
	}
	pmem, ram := sysfs.Region{Name: "region0", Type: "pmem"}, sysfs.Region{Name: "region0", Type: "ram"}
	withND := pmem
	withND.NDRegion, withND.NDRegionBound = "region0", true
	withDax := ram
	withDax.DaxRegion, withDax.DaxRegionBound = "dax_region0", true
	daxUnbound := ram
	daxUnbound.DaxRegion = "dax_region0"
	for _, c := range []struct {
		name   string
		origin Origin
		reg    sysfs.Region
		age    time.Duration // since the last change
		want   time.Duration // after the last change; 0: never by time alone
	}{
		{"foreign, configuring", OriginForeign, pmem, 0, window},
		{"foreign, configuring, half the window", OriginForeign, pmem, window / 2, window},
		{"unknown origin, configuring", OriginUnknown, pmem, 0, window},
		{"daemon's, configuring", OriginDaemon, pmem, 0, 0}, // settled at once
		{"foreign, bound, nd region registered", OriginForeign, bound(withND), 0, quiet},
		{"foreign, bound, nd region registered, past quiet", OriginForeign, bound(withND), 2 * quiet, 0},
		{"foreign, bound, nd region not registered", OriginForeign, bound(pmem), 0, 0},
		{"daemon's, bound, nd region registered", OriginDaemon, bound(withND), 0, quiet},
		{"daemon's, bound, nd region not registered", OriginDaemon, bound(pmem), 0, 0},
		{"ram, bound, dax region registered", OriginKernel, bound(withDax), 0, quiet},
		{"ram, bound, no dax region (System RAM already)", OriginKernel, bound(ram), 0, window},
		{"ram, bound, dax region not registered", OriginKernel, bound(daxUnbound), 0, 0},
		{"foreign, committed, not bound", OriginForeign, func() sysfs.Region { r := pmem; r.Committed = true; return r }(), 0, window},
	} {
		t.Run(c.name, func(t *testing.T) {
			now := time.Now()
			r := &regionState{reg: c.reg, origin: c.origin, changedAt: now.Add(-c.age)}
			got := e.settleCheckAtLocked(r, now)
			var want time.Time
			if c.want != 0 {
				want = r.changedAt.Add(c.want)
			}
			if !got.Equal(want) {
				t.Fatalf("SettleCheckAt = %v after the change, want %v (0: only a change settles it)", since(r.changedAt, got), c.want)
			}
			// Against the rule: unsettled from now until the time
			// reported, settled from it on; never settled by time when
			// the time is zero (unless it already is).
			settledNow := e.settledLocked(r, now) == nil
			for d := time.Duration(0); d <= 2*window; d += time.Millisecond {
				at := now.Add(d)
				settled := e.settledLocked(r, at) == nil
				switch {
				case settledNow:
					if !got.IsZero() {
						t.Fatalf("settled now, but SettleCheckAt = %v", got)
					}
				case got.IsZero() && settled:
					t.Fatalf("SettleCheckAt is zero, but time alone settles it %v from now", d)
				case !got.IsZero() && settled != !at.Before(got):
					t.Fatalf("%v from now: settled %v, SettleCheckAt %v from now", d, settled, got.Sub(now))
				}
			}
		})
	}
}

func since(from, at time.Time) time.Duration {
	if at.IsZero() {
		return 0
	}
	return at.Sub(from)
}

// nextEvent returns the first event on evs that match accepts.
func nextEvent(t *testing.T, evs <-chan Event, what string, match func(Event) bool) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-evs:
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no event: %s", what)
			return Event{}
		}
	}
}

// TestQueueDepthIsAnEvent: every change of a root decoder's writer queue
// is published as RootDecoderChanged with the new depth, so the bus's
// QueueDepth follows events; nothing polls it. Another holder of the
// writer (the guard, for another process), a request queued behind it,
// and the releases.
//
// Mutation: drop the ObserveQueues registration in New → no event with
// depth 1 when the writer is taken.
func TestQueueDepthIsAnEvent(t *testing.T) {
	h := newHarness(t)
	eng := h.start(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs, unsubscribe := eng.Subscribe(ctx)
	defer unsubscribe()
	depth := func(n int) func(Event) bool {
		return func(ev Event) bool {
			return ev.Kind == RootDecoderChanged && ev.RootDecoder.Name == "decoder0.0" && ev.RootDecoder.QueueDepth == n
		}
	}
	_, held := h.holdWriter("decoder0.0")
	nextEvent(t, evs, "writer taken: depth 1", depth(1))
	name := h.rawCreate("decoder0.0", "pmem", 256<<20, []string{"decoder3.0"}, false)
	done := make(chan error, 1)
	go func() { done <- eng.Delete(ctx, DeleteRequest{Name: name}) }()
	nextEvent(t, evs, "delete queued: depth 2", depth(2))
	held.Release()
	nextEvent(t, evs, "writer free again: depth 0", depth(0))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSetSettleReportsMovedDeadlines: a reload that changes the settle
// window reports each region whose Settled or SettleCheckAt it moves, with
// the new values: a reader armed on the old time would otherwise show the
// old state until then.
//
// Mutation: drop the events of SetSettle → no RegionChanged after it.
func TestSetSettleReportsMovedDeadlines(t *testing.T) {
	h := newHarness(t)
	eng := h.start(func(c *Config) { c.SettleWindow = time.Hour })
	name, err := h.fs.NextRegionName("decoder0.0", "pmem")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.fs.Write("bus/cxl/devices/decoder0.0/create_pmem_region", name); err != nil {
		t.Fatal(err)
	}
	var r RegionInfo
	waitFor(t, "the foreign region in the model", func() bool {
		r, err = eng.Region(name)
		return err == nil
	})
	if r.Settled || r.SettleCheckAt.IsZero() || time.Until(r.SettleCheckAt) < 59*time.Minute {
		t.Fatalf("foreign region configuring, window 1h: Settled %v, SettleCheckAt in %v", r.Settled, time.Until(r.SettleCheckAt))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs, unsubscribe := eng.Subscribe(ctx)
	defer unsubscribe()
	eng.SetSettle(2*time.Second, 0)
	ev := nextEvent(t, evs, "RegionChanged after SetSettle", func(ev Event) bool { return ev.Kind == RegionChanged && ev.Region.Name == name })
	if left := time.Until(ev.Region.SettleCheckAt); ev.Region.Settled || left <= 0 || left > 2*time.Second {
		t.Fatalf("after SetSettle(2s): Settled %v, SettleCheckAt in %v, want in (0, 2s]", ev.Region.Settled, left)
	}
	eng.SetSettle(time.Millisecond, 0)
	ev = nextEvent(t, evs, "RegionChanged after SetSettle", func(ev Event) bool { return ev.Kind == RegionChanged && ev.Region.Name == name })
	if !ev.Region.Settled || !ev.Region.SettleCheckAt.IsZero() {
		t.Fatalf("after SetSettle(1ms): Settled %v, SettleCheckAt %v; want settled, zero", ev.Region.Settled, ev.Region.SettleCheckAt)
	}
}
