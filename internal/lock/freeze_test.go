package lock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errRootGone = errors.New("cxl_acpi unbind: root0 going away")

// Mutations, each making TestFreeze fail:
//   - Freeze leaves the queue alone → queued requests run their ops after
//     the running op ends;
//   - Tx.Write skips the frozen check → the running op's write reaches the
//     file;
//   - takeTurn skips the frozen check → a new request runs;
//   - Thaw leaves w.frozen set → the request after Thaw fails.
func TestFreeze(t *testing.T) {
	reg, root := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	attr := "delete_region"
	if err := os.WriteFile(filepath.Join(root, attr), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	inside := make(chan struct{})
	proceed := make(chan struct{})
	runningErr := make(chan error, 1)
	go func() {
		runningErr <- w.Do(context.Background(), func(ctx context.Context, tx *Tx) error {
			close(inside)
			<-proceed
			return tx.Write(attr, "region0")
		})
	}()
	<-inside

	const queued = 10
	var ranQueued atomic.Int32
	errs := make(chan error, queued)
	for i := range queued {
		go func() {
			errs <- w.Do(context.Background(), func(context.Context, *Tx) error {
				ranQueued.Add(1)
				return nil
			})
		}()
		waitDepth(t, w, i+2)
	}

	w.Freeze(errRootGone)

	for range queued {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrFrozen) || !errors.Is(err, errRootGone) {
				t.Errorf("queued request = %v, want ErrFrozen and the reason", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("queued requests were not failed by Freeze")
		}
	}
	if frozen, reason := w.Frozen(); !frozen || reason != errRootGone {
		t.Errorf("Frozen() = %v, %v; want true, %v", frozen, reason, errRootGone)
	}
	if err := w.Do(context.Background(), func(context.Context, *Tx) error {
		ranQueued.Add(1)
		return nil
	}); !errors.Is(err, ErrFrozen) {
		t.Errorf("new request on a frozen writer = %v, want ErrFrozen", err)
	}
	if h, err := w.Acquire(context.Background()); !errors.Is(err, ErrFrozen) {
		if h != nil {
			h.Release()
		}
		t.Errorf("Acquire on a frozen writer = %v, want ErrFrozen", err)
	}

	close(proceed)
	if err := <-runningErr; !errors.Is(err, ErrFrozen) || !errors.Is(err, errRootGone) {
		t.Errorf("write inside the running op after Freeze = %v, want ErrFrozen", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, attr)); len(b) != 0 {
		t.Errorf("a write reached sysfs after the freeze: %q", b)
	}
	if n := ranQueued.Load(); n != 0 {
		t.Errorf("%d ops ran on a frozen writer", n)
	}
	if d := w.QueueDepth(); d != 0 {
		t.Errorf("queue depth %d after the freeze, want 0", d)
	}

	w.Thaw()
	if frozen, reason := w.Frozen(); frozen || reason != nil {
		t.Errorf("Frozen() after Thaw = %v, %v", frozen, reason)
	}
	if err := w.Do(context.Background(), func(ctx context.Context, tx *Tx) error {
		return tx.Write(attr, "region0")
	}); err != nil {
		t.Fatalf("request after Thaw: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, attr)); string(b) != "region0\n" {
		t.Errorf("after Thaw the write left %q, want %q", b, "region0\n")
	}
}

// A request that has the turn but waits for the flock (a foreign tool holds
// it) fails at once on a freeze, not at its ctx's deadline.
// Mutation: pass a nil stop channel to lockFile in Acquire →
// TestFreezeEndsFlockWait waits for the lock holder and fails.
func TestFreezeEndsFlockWait(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	unlock, err := LockFile(context.Background(), w.LockPath())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	var ran atomic.Bool
	done := make(chan error, 1)
	go func() {
		done <- w.Do(context.Background(), func(context.Context, *Tx) error { ran.Store(true); return nil })
	}()
	waitDepth(t, w, 1)
	time.Sleep(5 * time.Millisecond) // into the flock poll
	w.Freeze(errRootGone)
	select {
	case err := <-done:
		if !errors.Is(err, ErrFrozen) {
			t.Errorf("Do = %v, want ErrFrozen", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a freeze did not end the wait for the flock")
	}
	if ran.Load() {
		t.Error("op ran on a frozen writer")
	}
	if d := w.QueueDepth(); d != 0 {
		t.Errorf("queue depth %d, want 0", d)
	}
}

// Freezes and thaws racing with many requests: no op overlaps another, no
// write happens while frozen, and the writer ends usable.
// Mutation: drop the frozen check after the flock in Acquire, or in Tx.Write
// → writesWhileFrozen goes above zero under -race stress.
func TestFreezeThawStress(t *testing.T) {
	reg, root := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	attr := "commit"
	if err := os.WriteFile(filepath.Join(root, attr), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// frozenGen is odd while frozen; a write that starts and ends in the
	// same even generation was made while thawed.
	var frozenGen atomic.Int64
	var inOp, overlaps, writesWhileFrozen atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			w.Freeze(errRootGone)
			frozenGen.Add(1)
			time.Sleep(50 * time.Microsecond)
			frozenGen.Add(1)
			w.Thaw()
			time.Sleep(50 * time.Microsecond)
		}
	})
	var reqs sync.WaitGroup
	for range 100 {
		reqs.Go(func() {
			for range 5 {
				err := w.Do(context.Background(), func(ctx context.Context, tx *Tx) error {
					if inOp.Add(1) != 1 {
						overlaps.Add(1)
					}
					defer inOp.Add(-1)
					before := frozenGen.Load()
					err := tx.Write(attr, "1")
					after := frozenGen.Load()
					if err == nil && before%2 == 1 && after == before {
						writesWhileFrozen.Add(1)
					}
					if err != nil && !errors.Is(err, ErrFrozen) {
						return err
					}
					return nil
				})
				if err != nil && !errors.Is(err, ErrFrozen) {
					t.Error(err)
				}
			}
		})
	}
	reqs.Wait()
	cancel()
	wg.Wait()
	if overlaps.Load() != 0 {
		t.Errorf("%d overlapping ops", overlaps.Load())
	}
	if writesWhileFrozen.Load() != 0 {
		t.Errorf("%d writes reached sysfs while frozen", writesWhileFrozen.Load())
	}
	if frozen, _ := w.Frozen(); frozen {
		t.Fatal("writer left frozen")
	}
	if err := w.Do(context.Background(), func(context.Context, *Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// Freezing twice keeps the first reason; Freeze(nil) still freezes.
func TestFreezeReasons(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	w.Freeze(nil)
	frozen, reason := w.Frozen()
	if !frozen || reason == nil {
		t.Fatalf("Freeze(nil): Frozen() = %v, %v", frozen, reason)
	}
	w.Thaw()
	w.Freeze(errRootGone)
	w.Freeze(errors.New("later"))
	if _, reason := w.Frozen(); reason != errRootGone {
		t.Errorf("reason after a second Freeze = %v, want the first", reason)
	}
	err := w.Do(context.Background(), func(context.Context, *Tx) error { return nil })
	var fe *FrozenError
	if !errors.As(err, &fe) || fe.Writer != "decoder0.0" || fe.Reason != errRootGone {
		t.Errorf("Do on frozen writer = %#v, want a *FrozenError naming the writer and reason", err)
	}
}
