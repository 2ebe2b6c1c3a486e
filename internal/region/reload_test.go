package region

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReloadSettleDuringDeletes reloads the settle times (as a config
// reload does, SetSettle) while regions are created, deleted and listed by
// three clients. Under -race it proves that every reader of the times
// takes Engine.mu, as SetSettle does; each delete still succeeds with
// exactly one delete_region write.
//
// Mutation: read e.settleWindow after e.mu.Unlock() in waitSettled (or
// write it in SetSettle without the lock) and the race detector fails
// this test.
func TestReloadSettleDuringDeletes(t *testing.T) {
	h := newHarness(t)
	eng := h.start(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	stop := make(chan struct{})
	var reloads atomic.Int64
	var bg sync.WaitGroup
	bg.Go(func() {
		windows := []time.Duration{150 * time.Millisecond, 20 * time.Millisecond, 300 * time.Millisecond}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			eng.SetSettle(windows[i%len(windows)], time.Duration(10+i%30)*time.Millisecond)
			reloads.Add(1)
			time.Sleep(time.Millisecond)
		}
	})
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, r := range eng.Regions() {
				_ = r.Settled
			}
			time.Sleep(time.Millisecond)
		}
	})

	var ops sync.WaitGroup
	var deleted atomic.Int64
	for _, root := range []string{"decoder0.0", "decoder0.0", "decoder0.0"} {
		{
			ops.Go(func() {
				for range 4 {
					info, err := eng.Create(ctx, CreateRequest{RootDecoder: root, Type: "pmem", Size: 256 << 20})
					if isErr(err, ErrBusy) {
						continue // the window is full: the other loop holds it
					}
					if err != nil {
						t.Errorf("create on %s: %v", root, err)
						return
					}
					if err := eng.Delete(ctx, DeleteRequest{Name: info.Name, Generation: info.Generation}); err != nil {
						t.Errorf("delete %s: %v", info.Name, err)
						return
					}
					deleted.Add(1)
				}
			})
		}
	}
	ops.Wait()
	close(stop)
	bg.Wait()
	if deleted.Load() == 0 || reloads.Load() == 0 {
		t.Fatalf("%d deletes and %d reloads: the test proved nothing", deleted.Load(), reloads.Load())
	}
	h.requireClean()
	t.Logf("%d creates and deletes under %d reloads", deleted.Load(), reloads.Load())
}
