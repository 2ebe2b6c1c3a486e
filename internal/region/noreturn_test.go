package region

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// A create reports its point of no return once, under the writer, before
// commit is written; a cancel that arrives by then rolls the create back
// (the D-Bus Job.Cancel path), one that arrives later cannot stop it.
// Mutation: in createRun.do call ctx.Err() instead of PointOfNoReturn and
// the hook is never called; "cancel at the point" then commits.
func TestCreatePointOfNoReturn(t *testing.T) {
	for _, tt := range []struct {
		name        string
		cancelAtIt  bool
		cancelAfter bool
	}{
		{name: "not cancelled"},
		{name: "cancel at the point", cancelAtIt: true},
		{name: "cancel after it", cancelAfter: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			eng := h.start(nil)
			before, err := h.fs.Scan()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var calls, commitsThen atomic.Int32
			ctx = OnPointOfNoReturn(ctx, func() {
				calls.Add(1)
				commitsThen.Store(int32(h.k.Writes("commit")))
				if tt.cancelAtIt {
					cancel()
				}
			})
			if tt.cancelAfter {
				go func() {
					waitFor(t, "the commit", func() bool { return h.k.Writes("commit") > 0 })
					cancel()
				}()
			}
			_, err = eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20})
			if calls.Load() != 1 || commitsThen.Load() != 0 {
				t.Errorf("point of no return reported %d times, with %d commit writes before it; want once, before commit", calls.Load(), commitsThen.Load())
			}
			if tt.cancelAtIt {
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("create = %v, want canceled", err)
				}
				if h.k.Writes("commit") != 0 {
					t.Fatal("a create cancelled at its point of no return wrote commit")
				}
				after, err := h.fs.Scan()
				if err != nil {
					t.Fatal(err)
				}
				requireSameTree(t, before, after)
				return
			}
			if err != nil && !tt.cancelAfter {
				t.Fatalf("create: %v", err)
			}
			// Cancelled after commit, the create may report that it did
			// not wait for the devices, but it keeps the region.
			regions := eng.Regions()
			if len(regions) != 1 || h.k.Writes("commit") != 1 || h.k.Writes("delete_region") != 0 {
				t.Fatalf("after the create (%v): regions %v, %d commit and %d delete_region writes; want the region kept",
					err, regions, h.k.Writes("commit"), h.k.Writes("delete_region"))
			}
		})
	}
}
