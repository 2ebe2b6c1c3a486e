package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// onOpen decides a permission event: the daemon's own opens and opens of
// files no longer marked pass at once; the rest are decided by a
// goroutine of their own, so that a held open never stops the read loop
// (whose close events are what frees the writers).
func (g *Guard) onOpen(ev event) {
	if ev.pid == g.self {
		// The daemon opens a guarded file only from inside a writer's
		// turn: holding it again would deadlock.
		g.answer(ev, true)
		return
	}
	id, err := fstatID(int(ev.fd))
	g.mu.Lock()
	m, ok := g.byFile[id]
	var t Target
	if ok {
		t = m.target
	}
	g.mu.Unlock()
	if err != nil || !ok {
		// Unmarked meanwhile (its root decoder went away): nothing to guard.
		g.answer(ev, true)
		return
	}
	g.queued.Add(1)
	g.wg.Go(func() {
		start := time.Now()
		ctx, cancel := context.WithTimeoutCause(g.ctx, g.cfg.QueueTimeout, errQueueTimeout)
		defer cancel()
		ctx, stop := context.WithCancelCause(ctx)
		defer stop(nil)
		w := g.enqueue(ev.pid, stop)
		result, err := g.admit(ctx, ev.pid, t, id)
		g.dequeue(w)
		g.queued.Add(-1)
		delivered := g.answer(ev, result != ResultRefused)
		if result == ResultRefused && (g.ctx.Err() != nil || errors.Is(context.Cause(ctx), errOpenerGone)) {
			// The guard closed (the kernel let the open through) or the
			// opener was killed while it waited: not a refusal.
			g.log.Debug("guard: open abandoned", "pid", ev.pid, "file", t.Path, "reason", context.Cause(ctx))
			return
		}
		if result == ResultAllowed || result == ResultWaited {
			if !delivered {
				// The opener stopped waiting: its open never happened.
				g.abandon(openKey{pid: ev.pid, file: id})
				return
			}
			if g.proc.gone(ev.pid) {
				// Either the opener was killed while it waited (the kernel
				// takes the answer to a cancelled wait without complaint)
				// and no close will end the hold taken for it, or it has
				// already written, closed and exited. Either way it holds
				// no descriptor now. The open is counted: in the second
				// case, the common one for `echo`, it happened.
				g.abandon(openKey{pid: ev.pid, file: id})
			}
		}
		g.cfg.Observer(t.Kind.String(), result)
		if result == ResultRefused {
			reason := err
			if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
				reason = fmt.Errorf("%w: %w", cause, err)
			}
			g.log.Warn("guard: open refused (EPERM)", "pid", ev.pid, "comm", g.proc.comm(ev.pid),
				"file", t.Path, "waited", time.Since(start).Round(time.Millisecond), "reason", reason,
				"held_by", g.describeHolders(g.scope(t)))
		} else if g.log.Enabled(g.ctx, slog.LevelDebug) {
			// Guarded: the arguments alone cost allocations on every open.
			g.log.Debug("guard: open allowed", "pid", ev.pid, "file", t.Path, "result", result,
				"waited", time.Since(start))
		}
	})
}

// scope is the root decoders whose writers an open of t needs, sorted.
func (g *Guard) scope(t Target) []string {
	if t.Kind.perRoot() {
		return []string{t.RootDecoder}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.roots
}

// admit gets the writers an open needs and records the open as their
// holder. It returns ResultPassed when nothing had to be taken,
// ResultAllowed or ResultWaited when writers were taken, ResultRefused
// with the reason otherwise.
func (g *Guard) admit(ctx context.Context, pid int, t Target, file fileID) (string, error) {
	lin := &lineage{proc: g.proc, pid: pid, stop: g.self}
	key := openKey{pid: pid, file: file}
	for {
		need := g.scope(t)
		p := g.plan(key, lin, need)
		if p.reentrant {
			return ResultPassed, nil
		}
		waitStart := time.Now()
		acquired, rest := g.tryAcquire(p.missing)
		missing, err := g.notFlocked(lin, rest)
		if err != nil {
			releaseAll(acquired)
			return ResultRefused, err
		}
		if len(missing) > 0 {
			waited, err := g.acquire(ctx, missing, t.Kind.perRoot())
			if err != nil {
				releaseAll(acquired)
				return ResultRefused, err
			}
			for rd, release := range waited {
				acquired[rd] = release
			}
		}
		if (t.Kind == KindDelete || t.Teardown) && g.cfg.Settled != nil {
			// need is the delete's own root decoder, or every root
			// decoder for an unbind.
			for _, rd := range need {
				if err := g.cfg.Settled(ctx, rd); err != nil {
					releaseAll(acquired)
					return ResultRefused, fmt.Errorf("regions of %s not settled: %w", rd, err)
				}
			}
		}
		if t.Kind == KindDelete && g.cfg.RefuseDelete != nil {
			if err := g.cfg.RefuseDelete(t.RootDecoder); err != nil {
				releaseAll(acquired)
				return ResultRefused, fmt.Errorf("delete_region of %s refused: %w", t.RootDecoder, err)
			}
		}
		if len(p.joined) == 0 && len(acquired) == 0 {
			return ResultPassed, nil // every writer is held by the opener's `cxlregionctl lock`
		}
		switch g.commit(key, t, p.joined, acquired) {
		case committed:
			switch {
			case len(acquired) == 0:
				return ResultPassed, nil
			case time.Since(waitStart) >= waitedAfter:
				return ResultWaited, nil
			}
			return ResultAllowed, nil
		case guardClosed:
			releaseAll(acquired)
			return ResultRefused, errGuardClosed
		}
		// A holder the opener was joining let go meanwhile: start over.
		releaseAll(acquired)
	}
}

// tryAcquire takes, in name order, the writers of rds (sorted) that are
// free right now, and stops at the first that is not: that one and those
// after it are returned as rest, for notFlocked and acquire, so every
// writer is still taken in name order.
//
// A writer taken here needs no look at /proc/locks (notFlocked): its
// flock was free, and an flock is exclusive, so no process held it, the
// opener's `cxlregionctl lock` included; the opener needs the writer and
// now has it. Only a writer that is busy (its turn held or queued for, or
// its flock held elsewhere) can be one the opener's process tree holds
// already, and only those go to notFlocked. An idle writer, the common
// case, costs no read of /proc at all.
func (g *Guard) tryAcquire(rds []string) (acquired map[string]func(), rest []string) {
	acquired = make(map[string]func(), len(rds))
	for i, rd := range rds {
		release, ok := g.cfg.Writers.TryAcquire(rd)
		if !ok {
			return acquired, rds[i:]
		}
		acquired[rd] = release
	}
	return acquired, nil
}

// notFlocked drops the root decoders whose lock file the opener's process
// tree holds: `cxlregionctl lock DECODER -- CMD` already holds that
// writer for CMD and its children, and waiting for it would deadlock.
func (g *Guard) notFlocked(lin *lineage, rds []string) ([]string, error) {
	if len(rds) == 0 {
		return rds, nil
	}
	locks, err := g.proc.flocks()
	if err != nil {
		// Without /proc/locks nobody can be recognized: take the writers
		// (a `lock` child then waits until QueueTimeout and is refused,
		// which is loud, instead of being let through concurrently).
		g.log.Warn("guard: cannot read /proc/locks", "err", err)
		return rds, nil
	}
	var out []string
	for _, rd := range rds {
		p, err := g.cfg.Writers.LockPath(rd)
		if err != nil {
			return nil, err
		}
		if id, err := pathID(p); err == nil && lockedAtAll(locks, id) && holdsFlock(locks, lin.get(), id) {
			continue
		}
		out = append(out, rd)
	}
	return out, nil
}

// acquire takes the writers in name order (rds is sorted), so that two
// openers needing several writers cannot deadlock. For a file of one root
// decoder a frozen writer refuses the open; for a driver file a frozen
// writer is skipped: its root is already going or gone.
func (g *Guard) acquire(ctx context.Context, rds []string, perRoot bool) (map[string]func(), error) {
	got := make(map[string]func(), len(rds))
	for _, rd := range rds {
		release, err := g.cfg.Writers.Acquire(ctx, rd)
		if errors.Is(err, ErrWriterFrozen) && !perRoot {
			continue
		}
		if err != nil {
			releaseAll(got)
			return nil, fmt.Errorf("writer of %s: %w", rd, err)
		}
		got[rd] = release
	}
	return got, nil
}

func releaseAll(rs map[string]func()) {
	for _, r := range rs {
		r()
	}
}

var (
	errQueueTimeout = errors.New("writers busy past the queue timeout")
	errOpenerGone   = errors.New("the opener exited while its open was held")
	errGuardClosed  = errors.New("guard closed")
)

// waiter is an open being decided: the holder check cancels it once its
// opener is gone, so a killed process neither stays in QueueDepth nor
// takes a writer it will never use.
type waiter struct {
	pid  int
	stop context.CancelCauseFunc
}

func (g *Guard) enqueue(pid int, stop context.CancelCauseFunc) *waiter {
	w := &waiter{pid: pid, stop: stop}
	g.waitMu.Lock()
	g.waiting[w] = struct{}{}
	g.waitMu.Unlock()
	return w
}

func (g *Guard) dequeue(w *waiter) {
	g.waitMu.Lock()
	delete(g.waiting, w)
	g.waitMu.Unlock()
}

// dropDeadWaiters cancels the opens whose openers have exited.
func (g *Guard) dropDeadWaiters() {
	g.waitMu.Lock()
	ws := make([]*waiter, 0, len(g.waiting))
	for w := range g.waiting {
		ws = append(ws, w)
	}
	g.waitMu.Unlock()
	for _, w := range ws {
		if g.proc.gone(w.pid) {
			w.stop(errOpenerGone)
		}
	}
}
