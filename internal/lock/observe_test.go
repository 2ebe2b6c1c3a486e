package lock

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestObserveQueuesSeesEveryDepth: the queue observer is called after
// every change of a writer's QueueDepth, so a reader that keeps the depth
// it read in the observer (the engine's RootDecoderChanged, the service's
// QueueDepth property) is never left with a stale one: a request taking a
// free turn, one queueing behind it, one giving up while queued, the turn
// handed on, the last release. The observer reads the writer (QueueDepth)
// from inside, which deadlocks if it is called with the writer's lock
// held.
//
// Mutation: drop the queueChanged call in passTurn → the depth last seen
// stays 2 once the turn is handed on; drop it from TryAcquire → "turn
// tried" stays 0.
func TestObserveQueuesSeesEveryDepth(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	var mu sync.Mutex
	var seen []int
	reg.ObserveQueues(func(rd string) {
		if rd != "decoder0.0" {
			t.Errorf("observer told of %q", rd)
		}
		d := w.QueueDepth()
		mu.Lock()
		seen = append(seen, d)
		mu.Unlock()
	})
	last := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return -1, 0
		}
		return seen[len(seen)-1], len(seen)
	}
	await := func(what string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if d, _ := last(); d == want && w.QueueDepth() == want {
				return
			}
			if time.Now().After(deadline) {
				d, n := last()
				t.Fatalf("%s: observer last saw depth %d (%d calls), QueueDepth %d, want %d", what, d, n, w.QueueDepth(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}

	held, err := w.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	await("turn taken", 1)
	second := make(chan *Held, 1)
	go func() {
		h, err := w.Acquire(context.Background())
		if err != nil {
			t.Error(err)
		}
		second <- h
	}()
	await("second request queued", 2)
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := w.Acquire(ctx)
		gaveUp <- err
	}()
	await("third request queued", 3)
	cancel()
	if err := <-gaveUp; err == nil {
		t.Fatal("a canceled Acquire took the turn")
	}
	await("third request gave up", 2)
	held.Release()
	await("turn handed on", 1)
	(<-second).Release()
	await("last release", 0)

	// The guard's fast path takes the turn too (TryAcquire).
	tried := w.TryAcquire()
	if tried == nil {
		t.Fatal("TryAcquire of an idle writer failed")
	}
	await("turn tried", 1)
	tried.Release()
	await("tried turn released", 0)

	reg.ObserveQueues(nil)
	_, before := last()
	if err := w.Do(context.Background(), func(context.Context, *Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, after := last(); after != before {
		t.Errorf("a removed observer was called %d times", after-before)
	}
}
