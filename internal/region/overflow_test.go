package region

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestOverflowRescans: when the uevent socket overflows (ENOBUFS; here a
// one-event subscription buffer), the engine rescans and its model matches
// sysfs again, regions made behind its back included.
//
// Mutation: ignore ErrResync in followUevents and no rescan follows the
// overflow.
func TestOverflowRescans(t *testing.T) {
	h := newHarness(t)
	eng := h.start(func(c *Config) { c.Events = h.k.Subscribe(1) })
	events, stop := eng.Subscribe(context.Background())
	defer stop()
	var want []string
	for _, ed := range []string{"decoder3.0", "decoder4.0", "decoder5.0"} {
		want = append(want, h.rawCreate("decoder0.0", "pmem", 256<<20, []string{ed}, true))
	}
	sawOverflow := false
	deadline := time.After(10 * time.Second)
	for !sawOverflow {
		select {
		case ev := <-events:
			sawOverflow = ev.Kind == Rescanned && ev.Reason == "overflow"
		case <-deadline:
			t.Fatal("no rescan after the uevent buffer overflowed")
		}
	}
	waitFor(t, "the model to hold every region made behind its back", func() bool {
		var got []string
		for _, r := range eng.Regions() {
			got = append(got, r.Name)
		}
		return slices.Equal(got, want)
	})
}
