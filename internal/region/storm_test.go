package region

import (
	"context"
	"sync"
	"testing"
)

// TestDeleteStorm: 1000 concurrent delete requests for one region reach the
// kernel as exactly one delete_region write, print no WARNING, and every
// caller gets the same success (guarantee 2).
//
// Mutation: make coalesce start a new call for every request (drop the
// e.deletes lookup) and this test sees hundreds of delete_region writes and
// WARNINGs from the simulated kernel.
func TestDeleteStorm(t *testing.T) {
	h := newHarness(t)
	eng := h.start(nil)
	ctx := context.Background()
	info, err := eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// Keep the writer busy so that every request has arrived before the
	// delete reaches its turn.
	w, held := h.holdWriter("decoder0.0")
	const n = 1000
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = eng.Delete(ctx, DeleteRequest{Name: info.Name, Generation: info.Generation})
		})
	}
	close(start)
	// Every request has arrived once it has joined the delete in flight or
	// queued on the writer itself (behind the held turn).
	waitFor(t, "every request to arrive", func() bool {
		return max(eng.joinedDeletes(info.Name, info.Generation), 0)+w.QueueDepth()-1 >= n
	})
	held.Release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if got := h.k.Writes("decoder0.0/delete_region"); got != 1 {
		t.Fatalf("delete_region writes = %d, want exactly 1", got)
	}
	h.requireClean()
	if _, err := eng.Region(info.Name); !isErr(err, ErrNotFound) {
		t.Fatalf("region still in the model after delete: %v", err)
	}
	// A late request for the deleted generation is NotFound, and still no
	// second write.
	if err := eng.Delete(ctx, DeleteRequest{Name: info.Name, Generation: info.Generation}); !isErr(err, ErrNotFound) {
		t.Fatalf("late delete = %v, want NotFound", err)
	}
	if got := h.k.Writes("decoder0.0/delete_region"); got != 1 {
		t.Fatalf("delete_region writes after late request = %d, want 1", got)
	}
}
