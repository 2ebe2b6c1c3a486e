package region

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestStalledSubscriberIsBounded: a subscriber that stops reading holds at
// most the queue bound, however many events the engine publishes; it is
// counted once, gets one SubscriberResync in place of what it missed, and
// then events again. A subscriber that keeps reading loses nothing.
//
// Mutation: make publish always append (the unbounded queue of before) and
// the queue holds every event published.
func TestStalledSubscriberIsBounded(t *testing.T) {
	var overflows atomic.Int64
	h := &hub{limit: 64, overflowed: func() { overflows.Add(1) }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stalled, stopStalled := h.subscribe(ctx)
	defer stopStalled()
	live, stopLive := h.subscribe(ctx)
	defer stopLive()

	const published, round = 50_000, 32
	var read atomic.Int64
	go func() {
		for ev := range live {
			if ev.Kind == SubscriberResync {
				t.Error("a subscriber that keeps reading got a resync")
			}
			read.Add(1)
		}
	}()
	for i := 0; i < published; i += round {
		for range round {
			h.publish(Event{Kind: Rescanned, Reason: "request"})
		}
		// The live reader keeps up: wait for it between rounds.
		waitFor(t, "the live subscriber", func() bool { return read.Load() == int64(i+round) })
		// The stalled subscriber holds at most its queue; the live one
		// has nothing queued.
		if q := h.queued(); q > h.limit {
			t.Fatalf("after %d events %d are queued; bound %d per subscriber", i, q, h.limit)
		}
	}
	if q := h.queued(); q > h.limit {
		t.Fatalf("%d events queued for a stalled subscriber; bound %d", q, h.limit)
	}
	if n := overflows.Load(); n != 1 {
		t.Fatalf("overflows counted %d times, want 1 (the subscriber stalled once)", n)
	}
	// The stalled subscriber reads again: what it took before stalling,
	// then the resync, then new events.
	sawResync := false
	deadline := time.After(10 * time.Second)
	for !sawResync {
		select {
		case ev := <-stalled:
			sawResync = ev.Kind == SubscriberResync
		case <-deadline:
			t.Fatal("no SubscriberResync for the stalled subscriber")
		}
	}
	h.publish(Event{Kind: RegionAdded})
	select {
	case ev := <-stalled:
		if ev.Kind != RegionAdded {
			t.Fatalf("after the resync got %v, want region_added", ev.Kind)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event after the resync")
	}
}
