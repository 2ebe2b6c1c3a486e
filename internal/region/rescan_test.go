package region

import (
	"context"
	"testing"
	"time"
)

// TestSetRescanIntervalReloads: a running engine picks up a new rescan
// period (a config reload) and stops rescanning at 0. Without uevents
// (Events nil) a region made behind its back is seen only by a rescan.
//
// Mutation: drop the rescanEvery case from Run and no periodic rescan
// comes.
func TestSetRescanIntervalReloads(t *testing.T) {
	h := newHarness(t)
	eng := h.start(func(c *Config) { c.Events = nil; c.RescanInterval = 0 })
	events, stop := eng.Subscribe(context.Background())
	defer stop()
	periodic := func(within time.Duration) bool {
		deadline := time.After(within)
		for {
			select {
			case ev := <-events:
				if ev.Kind == Rescanned && ev.Reason == "periodic" {
					return true
				}
			case <-deadline:
				return false
			}
		}
	}
	name := h.rawCreate("decoder0.0", "pmem", 256<<20, []string{"decoder3.0"}, false)
	if periodic(200 * time.Millisecond) {
		t.Fatal("periodic rescan with RescanInterval 0")
	}
	if _, err := eng.Region(name); err == nil {
		t.Fatalf("%s known without uevents or a rescan", name)
	}

	eng.SetRescanInterval(10 * time.Millisecond)
	if !periodic(5 * time.Second) {
		t.Fatal("no periodic rescan after SetRescanInterval(10ms)")
	}
	waitFor(t, name+" in the model after the periodic rescan", func() bool {
		_, err := eng.Region(name)
		return err == nil
	})

	eng.SetRescanInterval(0)
	// A requested rescan is a barrier: the loop applies a new interval
	// before it serves anything else, so once the request's event arrives
	// no tick is left. Periodic events queued before it are drained.
	if err := eng.Rescan(context.Background()); err != nil {
		t.Fatal(err)
	}
	for ev := range events {
		if ev.Kind == Rescanned && ev.Reason == "request" {
			break
		}
	}
	if periodic(200 * time.Millisecond) {
		t.Error("periodic rescan after SetRescanInterval(0)")
	}
}
