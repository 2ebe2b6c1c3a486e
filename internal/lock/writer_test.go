package lock

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Mutation: make takeTurn return at once and lockFile return a no-op unlock
// (no turn, no flock) → TestDoSerializes reports overlapping ops.
func TestDoSerializes(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	const n = 150
	var inOp, overlaps, ran atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			err := w.Do(context.Background(), func(ctx context.Context, tx *Tx) error {
				if inOp.Add(1) != 1 {
					overlaps.Add(1)
				}
				time.Sleep(20 * time.Microsecond)
				ran.Add(1)
				inOp.Add(-1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := overlaps.Load(); got != 0 {
		t.Errorf("%d ops overlapped another op on the same writer", got)
	}
	if got := ran.Load(); got != n {
		t.Errorf("%d ops ran, want %d", got, n)
	}
	if d := w.QueueDepth(); d != 0 {
		t.Errorf("queue depth %d after all ops, want 0", d)
	}
}

// Mutation: drop the in-process turn (leave only the flock, which has no
// order) or make passTurnLocked take the newest waiter → TestDoFIFO sees the
// ops out of submission order.
func TestDoFIFO(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	gate, err := w.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const n = 120
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := w.Do(context.Background(), func(ctx context.Context, tx *Tx) error {
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
		// The sequencer: request i is queued before request i+1 is submitted.
		waitDepth(t, w, i+2)
	}
	gate.Release()
	wg.Wait()
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(order, want) {
		t.Errorf("ops ran in order %v, want submission order", order)
	}
}

// Mutation: key the turn or the lock file on the registry instead of the root
// decoder (one writer for all) → TestWritersRunInParallel times out at the
// barrier.
func TestWritersRunInParallel(t *testing.T) {
	reg, _ := newTestRegistry(t)
	names := []string{"decoder0.0", "decoder0.1", "decoder1.0", "decoder2.0"}
	var inside atomic.Int32
	all := make(chan struct{})
	var closeOnce sync.Once
	var wg sync.WaitGroup
	for _, name := range names {
		w := mustWriter(t, reg, name)
		wg.Go(func() {
			err := w.Do(context.Background(), func(ctx context.Context, tx *Tx) error {
				if inside.Add(1) == int32(len(names)) {
					closeOnce.Do(func() { close(all) })
				}
				select {
				case <-all:
					return nil
				case <-time.After(5 * time.Second):
					return errors.New("the other writers' ops never ran alongside this one")
				}
			})
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	wg.Wait()
}

// Mutation: ignore ctx.Done() while queued in takeTurn → the queued cases
// block until the gate opens and then run op; TestCancelledRequestIsDropped
// fails.
func TestCancelledRequestIsDropped(t *testing.T) {
	tests := []struct {
		name string
		// ctx returns the request's context; it is called once the request
		// would be queued behind a held turn.
		ctx     func() (context.Context, context.CancelFunc)
		cancel  bool // cancel after the request is queued
		wantErr error
	}{
		{
			name: "cancelled before Do",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			wantErr: context.Canceled,
		},
		{
			name:    "cancelled while queued",
			ctx:     func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			cancel:  true,
			wantErr: context.Canceled,
		},
		{
			name: "deadline while queued",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 30*time.Millisecond)
			},
			wantErr: context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, _ := newTestRegistry(t)
			w := mustWriter(t, reg, "decoder0.0")
			gate, err := w.Acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := tt.ctx()
			defer cancel()
			var called atomic.Bool
			done := make(chan error, 1)
			go func() {
				done <- w.Do(ctx, func(context.Context, *Tx) error {
					called.Store(true)
					return nil
				})
			}()
			if tt.cancel {
				waitDepth(t, w, 2)
				cancel()
			}
			var got error
			select {
			case got = <-done:
			case <-time.After(5 * time.Second):
				gate.Release()
				t.Fatal("Do did not return when its ctx ended")
			}
			if !errors.Is(got, tt.wantErr) {
				t.Errorf("Do = %v, want %v", got, tt.wantErr)
			}
			if d := w.QueueDepth(); d != 1 {
				t.Errorf("queue depth %d after the drop, want 1 (the gate)", d)
			}
			gate.Release()
			// The dropped request must not have kept or lost the turn.
			if err := w.Do(context.Background(), func(context.Context, *Tx) error { return nil }); err != nil {
				t.Fatal(err)
			}
			if called.Load() {
				t.Error("op of a dropped request ran")
			}
		})
	}
}

// A request cancelled at the moment the turn is handed to it must pass the
// turn on and not run its op.
// Mutations:
//   - drop passTurnLocked in takeTurn's cancel path → "cancel, then hand
//     over" loses the turn (queue depth stays 1);
//   - drop the ctx check after the flock in Acquire → "hand over, then
//     cancel" runs the op.
func TestCancelAtHandoverPassesTurn(t *testing.T) {
	tests := []struct {
		name string
		// handover cancels ctx and hands the gate's turn to the waiting
		// request, in one critical section of w.mu as if Release and the
		// cancellation had come at the same instant.
		handover func(w *Writer, gate *Held, cancel context.CancelFunc) error
	}{
		{"cancel, then hand over", func(w *Writer, gate *Held, cancel context.CancelFunc) error {
			w.mu.Lock()
			cancel()
			time.Sleep(2 * time.Millisecond) // the request wakes on ctx.Done and waits for w.mu
			w.passTurnLocked()
			w.mu.Unlock()
			return gate.release()
		}},
		{"hand over, then cancel", func(w *Writer, gate *Held, cancel context.CancelFunc) error {
			if err := gate.release(); err != nil { // the flock is free: only the ctx can stop the op
				return err
			}
			w.mu.Lock()
			w.passTurnLocked()
			time.Sleep(2 * time.Millisecond) // the request wakes with the turn and waits for w.mu
			cancel()
			w.mu.Unlock()
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 20 {
				reg, _ := newTestRegistry(t)
				w := mustWriter(t, reg, "decoder0.0")
				gate, err := w.Acquire(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				var ran atomic.Bool
				done := make(chan error, 1)
				go func() { done <- w.Do(ctx, func(context.Context, *Tx) error { ran.Store(true); return nil }) }()
				waitDepth(t, w, 2)
				if err := tt.handover(w, gate, cancel); err != nil {
					t.Fatal(err)
				}
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Fatalf("Do = %v, want Canceled", err)
				}
				if ran.Load() {
					t.Fatal("op ran although its ctx ended before it started")
				}
				if d := w.QueueDepth(); d != 0 {
					t.Fatalf("queue depth %d after the cancelled handover, want 0: the turn was lost", d)
				}
			}
		})
	}
}

// Cancellations racing with turn handovers, at random: no op overlaps
// another and the writer stays usable.
// Mutation: see TestCancelAtHandoverPassesTurn; this one catches it only
// now and then.
func TestCancelRacesKeepTheTurn(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	var inOp, overlaps atomic.Int32
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(300))*time.Microsecond)
			defer cancel()
			err := w.Do(ctx, func(context.Context, *Tx) error {
				if inOp.Add(1) != 1 {
					overlaps.Add(1)
				}
				time.Sleep(time.Duration(i%3) * 10 * time.Microsecond)
				inOp.Add(-1)
				return nil
			})
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if overlaps.Load() != 0 {
		t.Errorf("%d overlapping ops", overlaps.Load())
	}
	if d := w.QueueDepth(); d != 0 {
		t.Fatalf("queue depth %d after every request ended, want 0", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Do(ctx, func(context.Context, *Tx) error { return nil }); err != nil {
		t.Fatalf("writer stuck after cancellation races: %v", err)
	}
}

// Mutation: in Acquire, skip the turn (take only the flock) → the Acquire
// requests jump the queue and TestAcquireSharesFIFO sees the wrong order.
func TestAcquireSharesFIFO(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	gate, err := w.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	record := func(s string) {
		mu.Lock()
		order = append(order, s)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	steps := []string{"do1", "acquire2", "do3", "acquire4", "do5"}
	for i, s := range steps {
		wg.Go(func() {
			if s[:2] == "do" {
				if err := w.Do(context.Background(), func(context.Context, *Tx) error { record(s); return nil }); err != nil {
					t.Error(err)
				}
				return
			}
			h, err := w.Acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			record(s)
			time.Sleep(time.Millisecond) // a foreign process between open and close
			h.Release()
		})
		waitDepth(t, w, i+2)
	}
	gate.Release()
	wg.Wait()
	if !slices.Equal(order, steps) {
		t.Errorf("turns taken in order %v, want %v", order, steps)
	}
}

// Mutation: drop the sync.Once in Held.Release → the second Release hands the
// turn to a second waiter while the first one holds it; the depth check of
// TestReleaseIsIdempotent fails.
func TestReleaseIsIdempotent(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	first, err := w.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Held, 2)
	for i := range 2 {
		go func() {
			h, err := w.Acquire(context.Background())
			if err != nil {
				t.Error(err)
			}
			got <- h
		}()
		waitDepth(t, w, i+2)
	}
	first.Release()
	first.Release()
	second := <-got
	// The third request is still waiting: one holder, one waiter.
	time.Sleep(5 * time.Millisecond)
	if d := w.QueueDepth(); d != 2 {
		t.Errorf("queue depth %d after a double Release, want 2", d)
	}
	second.Release()
	third := <-got
	third.Release()
	if d := w.QueueDepth(); d != 0 {
		t.Errorf("queue depth %d at the end, want 0", d)
	}
}

// Mutation: make Do skip the flock (lockFile) → the op runs while the child
// process holds the lock, and TestDoWaitsForForeignLockHolder fails.
func TestDoWaitsForForeignLockHolder(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	child := startLockHolder(t, w.LockPath())

	var ran atomic.Bool
	done := make(chan error, 1)
	go func() {
		done <- w.Do(context.Background(), func(context.Context, *Tx) error {
			ran.Store(true)
			return nil
		})
	}()
	select {
	case err := <-done:
		t.Fatalf("Do returned (%v, ran=%v) while another process held the lock", err, ran.Load())
	case <-time.After(100 * time.Millisecond):
	}
	child.exit(t)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Do did not run after the other process released the lock")
	}
	if !ran.Load() {
		t.Error("op did not run")
	}
}

// Mutation: block in flock(2) without LOCK_NB, or ignore ctx in lockFile's
// wait → Do does not return at its deadline; TestDoFlockWaitIsCancellable
// fails.
func TestDoFlockWaitIsCancellable(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	startLockHolder(t, w.LockPath())

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var ran atomic.Bool
	start := time.Now()
	err := w.Do(ctx, func(context.Context, *Tx) error { ran.Store(true); return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do = %v, want DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Do took %v to notice its deadline", el)
	}
	if ran.Load() {
		t.Error("op ran without the lock")
	}
	if d := w.QueueDepth(); d != 0 {
		t.Errorf("queue depth %d after the dropped request, want 0", d)
	}
}

// The daemon's writer and `cxlregionctl lock` exclude each other in both
// directions.
// Mutation: open the lock file elsewhere than LockPath (or skip the flock in
// Acquire) → the child gets the lock while the writer is held.
func TestForeignProcessWaitsForWriter(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	h, err := w.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tryLockInChild(t, w.LockPath()) {
		t.Error("a child process took the lock while the writer held it")
	}
	h.Release()
	if !tryLockInChild(t, w.LockPath()) {
		t.Error("a child process could not take the lock after the writer released it")
	}
}

// In one process each acquisition has its own open file description, so
// LockFile conflicts with the writer as another process would.
// Mutation: share one fd for every acquisition in the process → LockFile
// gets the lock while the writer holds it.
func TestLockFileConflictsInProcess(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	h, err := w.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if unlock, err := LockFile(ctx, w.LockPath()); !errors.Is(err, context.DeadlineExceeded) {
		if unlock != nil {
			_ = unlock()
		}
		t.Fatalf("LockFile while the writer holds the lock = %v, want DeadlineExceeded", err)
	}
	h.Release()
	unlock, err := LockFile(context.Background(), w.LockPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Errorf("second unlock = %v, want the first's result (nil)", err)
	}
}

// TryAcquire takes the writer only when the turn and the flock are both free
// at once, and otherwise leaves the writer as it found it: not queued, turn
// given back. The guard relies on a nil from it whenever another process
// (a `cxlregionctl lock`) holds the flock.
//
// Mutation: make TryAcquire skip tryLockFile (a no-op unlock) → it returns a
// writer while another process holds the flock ("taken while a child held
// the flock"); drop the passTurn after a failed flock → "turn kept".
func TestTryAcquire(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")

	h := w.TryAcquire()
	if h == nil {
		t.Fatal("TryAcquire of an idle writer = nil")
	}
	if d := w.QueueDepth(); d != 1 {
		t.Errorf("queue depth %d while tried turn held, want 1", d)
	}
	if tryLockInChild(t, w.LockPath()) {
		t.Error("a child process took the lock while a tried turn held it")
	}
	if again := w.TryAcquire(); again != nil {
		again.Release()
		t.Fatal("TryAcquire took a writer whose turn was held")
	}
	waiting := make(chan error, 1)
	go func() {
		h2, err := w.Acquire(context.Background())
		if err == nil {
			h2.Release()
		}
		waiting <- err
	}()
	waitDepth(t, w, 2)
	h.Release()
	if err := <-waiting; err != nil {
		t.Fatalf("the waiter behind a tried turn: %v", err)
	}
	waitDepth(t, w, 0)

	child := startLockHolder(t, w.LockPath())
	if got := w.TryAcquire(); got != nil {
		got.Release()
		t.Fatal("TryAcquire: taken while a child held the flock")
	}
	if d := w.QueueDepth(); d != 0 {
		t.Fatalf("queue depth %d after a failed try: turn kept", d)
	}
	child.exit(t)
	h = w.TryAcquire()
	if h == nil {
		t.Fatal("TryAcquire = nil after the child let go of the flock")
	}
	h.Release()

	w.Freeze(errors.New("root going"))
	if got := w.TryAcquire(); got != nil {
		got.Release()
		t.Fatal("TryAcquire took a frozen writer")
	}
	w.Thaw()
	if h = w.TryAcquire(); h == nil {
		t.Fatal("TryAcquire = nil after Thaw")
	}
	h.Release()
	if d := w.QueueDepth(); d != 0 {
		t.Errorf("queue depth %d at the end, want 0", d)
	}
}
