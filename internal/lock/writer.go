package lock

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Writer is the single writer of one root decoder. Requests take turns in
// strict FIFO order of arrival; the turn holder also holds an exclusive flock
// on the writer's lock file, so processes outside the daemon that take the
// same lock are serialized with it.
type Writer struct {
	reg  *Registry
	name string
	path string // the lock file

	mu     sync.Mutex // guards the fields below; reg, name and path are fixed
	busy   bool       // someone holds the turn: a running op or an Acquire's Held
	queue  []*waiter  // those waiting for the turn, oldest first
	frozen error      // the reason while frozen, nil otherwise
	// freezeC is closed by Freeze so that a turn holder still waiting for the
	// flock gives up at once; Thaw makes a fresh one.
	freezeC chan struct{}
}

// waiter is one request waiting for the turn. ready is closed when the turn
// is handed to it (err nil) or when a freeze fails it (err set).
type waiter struct {
	ready chan struct{}
	err   error
}

func newWriter(r *Registry, name, path string) *Writer {
	return &Writer{reg: r, name: name, path: path, freezeC: make(chan struct{})}
}

// Name is the root decoder's name, e.g. "decoder0.0".
func (w *Writer) Name() string { return w.name }

// LockPath is the writer's lock file.
func (w *Writer) LockPath() string { return w.path }

// Do runs op once every request queued before it on this writer has
// finished, holding the turn and the lock file's flock for all of op. A
// request whose ctx ends before its turn, or while it waits for the flock, is
// dropped: op never runs and Do returns ctx.Err() wrapped. Once op starts it
// runs to its end; it receives ctx to decide what to do when the caller gives
// up (a create rolls back), but Tx.Write never looks at ctx, so a rollback
// still reaches sysfs.
//
// Do returns op's error as is.
func (w *Writer) Do(ctx context.Context, op func(ctx context.Context, tx *Tx) error) error {
	h, err := w.Acquire(ctx)
	if err != nil {
		return err
	}
	defer h.Release()
	tx := &Tx{w: w}
	defer tx.end()
	return op(ctx, tx)
}

// Held is a turn taken with Acquire.
type Held struct {
	w       *Writer
	once    sync.Once
	release func() error // drops the flock
}

// Acquire waits for the caller's turn in the same FIFO as Do and takes the
// flock. The fanotify guard uses it to keep the writer for a foreign process
// between that process's open() and close() of a control file. The caller
// must Release the Held.
func (w *Writer) Acquire(ctx context.Context) (*Held, error) {
	stop, err := w.takeTurn(ctx)
	if err != nil {
		return nil, err
	}
	unlock, err := lockFile(ctx, w.path, stop)
	if err != nil {
		w.passTurn()
		switch {
		case errors.Is(err, errStopped):
			return nil, w.frozenErr()
		case ctx.Err() != nil:
			return nil, fmt.Errorf("writer %s: waiting for lock file %s: %w", w.name, w.path, ctx.Err())
		default:
			return nil, fmt.Errorf("writer %s: %w", w.name, err)
		}
	}
	// A freeze or a cancellation that landed while the turn or the flock
	// came still wins: nothing may start on a frozen writer, and a request
	// whose caller gave up before it started is dropped.
	ferr := w.frozenErr()
	if ferr == nil && ctx.Err() != nil {
		ferr = fmt.Errorf("writer %s: waiting for turn: %w", w.name, ctx.Err())
	}
	if ferr != nil {
		if uerr := unlock(); uerr != nil {
			w.reg.log.Warn("unlock lock file", "writer", w.name, "path", w.path, "err", uerr)
		}
		w.passTurn()
		return nil, ferr
	}
	return &Held{w: w, release: unlock}, nil
}

// TryAcquire takes the turn and the flock only if both are free at this
// moment: nobody holds or waits for the turn, the writer is not frozen, and
// one non-blocking flock of the lock file succeeds. Otherwise it returns nil
// at once, queued nowhere and holding nothing; Acquire then waits and says
// why. The fanotify guard tries it first: a writer taken this way is held
// by no other open file description, so no `cxlregionctl lock` holds it,
// and the guard need not read /proc/locks to find out whether the opener
// runs under one.
func (w *Writer) TryAcquire() *Held {
	w.mu.Lock()
	if w.frozen != nil || w.busy || len(w.queue) > 0 {
		w.mu.Unlock()
		return nil
	}
	w.busy = true
	w.mu.Unlock()
	w.queueChanged()
	unlock, ok := tryLockFile(w.path)
	if !ok {
		w.passTurn()
		return nil
	}
	// As in Acquire: a freeze that landed while the flock was taken wins.
	if w.frozenErr() != nil {
		if err := unlock(); err != nil {
			w.reg.log.Warn("unlock lock file", "writer", w.name, "path", w.path, "err", err)
		}
		w.passTurn()
		return nil
	}
	return &Held{w: w, release: unlock}
}

// Release drops the flock and hands the turn to the next request. Calling it
// again does nothing.
func (h *Held) Release() {
	h.once.Do(func() {
		if err := h.release(); err != nil {
			h.w.reg.log.Warn("unlock lock file", "writer", h.w.name, "path", h.w.path, "err", err)
		}
		h.w.passTurn()
	})
}

// takeTurn waits for the turn. It returns the channel that a freeze closes,
// read in the same critical section that found the writer not frozen, so a
// freeze after it cannot be missed.
func (w *Writer) takeTurn(ctx context.Context) (<-chan struct{}, error) {
	w.mu.Lock()
	if w.frozen != nil {
		err := w.frozenErrLocked()
		w.mu.Unlock()
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		w.mu.Unlock()
		return nil, fmt.Errorf("writer %s: waiting for turn: %w", w.name, err)
	}
	if !w.busy && len(w.queue) == 0 {
		w.busy = true
		stop := w.freezeC
		w.mu.Unlock()
		w.queueChanged()
		return stop, nil
	}
	me := &waiter{ready: make(chan struct{})}
	w.queue = append(w.queue, me)
	w.mu.Unlock()
	w.queueChanged()

	select {
	case <-me.ready:
		if me.err != nil {
			return nil, me.err
		}
		return w.stopChan(), nil
	case <-ctx.Done():
	}

	w.mu.Lock()
	select {
	case <-me.ready:
		if me.err != nil {
			w.mu.Unlock()
			return nil, me.err
		}
		// The turn arrived together with the cancellation: hand it on.
		w.passTurnLocked()
	default:
		w.removeLocked(me)
	}
	w.mu.Unlock()
	w.queueChanged()
	return nil, fmt.Errorf("writer %s: waiting for turn: %w", w.name, ctx.Err())
}

// queueChanged tells the registry's queue observer (ObserveQueues) that
// QueueDepth changed. Called with w.mu not held.
func (w *Writer) queueChanged() {
	if f := w.reg.queueObserver.Load(); f != nil {
		(*f)(w.name)
	}
}

// stopChan returns the current freeze channel. A turn handed over by
// passTurn comes with the writer unfrozen (Freeze empties the queue), and a
// freeze after this read closes the channel returned.
func (w *Writer) stopChan() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.freezeC
}

func (w *Writer) removeLocked(me *waiter) {
	for i, q := range w.queue {
		if q == me {
			w.queue = append(w.queue[:i], w.queue[i+1:]...)
			return
		}
	}
}

func (w *Writer) passTurn() {
	w.mu.Lock()
	w.passTurnLocked()
	w.mu.Unlock()
	w.queueChanged()
}

// passTurnLocked hands the turn to the oldest waiter, or frees it.
func (w *Writer) passTurnLocked() {
	if len(w.queue) == 0 {
		w.busy = false
		return
	}
	next := w.queue[0]
	w.queue[0] = nil
	w.queue = w.queue[1:]
	close(next.ready) // busy stays true: the turn moves without a gap
}

// QueueDepth is the number of requests waiting plus the one running.
func (w *Writer) QueueDepth() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.queue)
	if w.busy {
		n++
	}
	return n
}
