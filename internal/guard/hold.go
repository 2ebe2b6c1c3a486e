package guard

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// openKey is one process's hold on one guarded file. Further opens of the
// same file by the same process share it: a hold ends when the process
// has no descriptor of the file left, however many it had.
type openKey struct {
	pid  int
	file fileID
}

// openRec is an open the guard let through on writers it holds.
type openRec struct {
	key    openKey
	target Target
	since  time.Time
	// opens counts the opens let through for this process and file, less
	// its close events. At zero the hold ends without reading /proc; as
	// the kernel may merge two close events of one process into one, a
	// count above zero is checked against /proc instead.
	opens  int
	roots  []string // the writers this open relies on
	warned bool     // logged past HoldWarn
}

// tenancy is a writer the guard holds for other processes, and the opens
// relying on it. The writer goes back when the last of them closes.
type tenancy struct {
	release func()
	opens   map[*openRec]struct{}
}

// heldBy reports whether one of the pids is among the tenancy's openers:
// a process tree that holds a writer through one open needs no second turn
// for the next (and waiting for it would deadlock with itself).
func (t *tenancy) heldBy(lineage []int) bool {
	for r := range t.opens {
		if slices.Contains(lineage, r.key.pid) {
			return true
		}
	}
	return false
}

type plan struct {
	reentrant bool
	joined    map[string]*tenancy // writers the opener's tree holds already
	missing   []string            // writers to take, sorted
}

func (g *Guard) plan(key openKey, lin *lineage, need []string) plan {
	g.mu.Lock()
	rec, reentrant := g.opens[key]
	if reentrant {
		rec.opens++
	}
	anyHeld := false
	for _, rd := range need {
		anyHeld = anyHeld || g.holds[rd] != nil
	}
	g.mu.Unlock()
	if reentrant {
		return plan{reentrant: true}
	}
	var tree []int
	if anyHeld {
		tree = lin.get() // read /proc outside the lock
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var p plan
	for _, rd := range need {
		if t, ok := g.holds[rd]; ok && t.heldBy(tree) {
			if p.joined == nil {
				p.joined = make(map[string]*tenancy)
			}
			p.joined[rd] = t
		} else {
			p.missing = append(p.missing, rd)
		}
	}
	return p
}

type commitResult int

const (
	committed commitResult = iota
	joinLost
	guardClosed
)

// commit records an allowed open as a holder of the writers it joined and
// those it acquired. It fails if a joined tenancy ended meanwhile: that
// writer is no longer the opener's.
func (g *Guard) commit(key openKey, t Target, joined map[string]*tenancy, acquired map[string]func()) commitResult {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return guardClosed
	}
	for rd, ten := range joined {
		if g.holds[rd] != ten {
			return joinLost
		}
	}
	rec := &openRec{key: key, target: t, since: time.Now()}
	if old, ok := g.opens[key]; ok {
		// The same process opened the file again while this open waited;
		// one hold covers both.
		rec = old
	}
	rec.opens++
	for rd, ten := range joined {
		ten.opens[rec] = struct{}{}
		rec.roots = append(rec.roots, rd)
	}
	for rd, release := range acquired {
		if old, ok := g.holds[rd]; ok {
			// Cannot happen while the writer is exclusive; if it did, the
			// older tenancy's writer would leak. Keep both opens on one.
			old.opens[rec] = struct{}{}
			release()
		} else {
			g.holds[rd] = &tenancy{release: release, opens: map[*openRec]struct{}{rec: {}}}
		}
		rec.roots = append(rec.roots, rd)
	}
	slices.Sort(rec.roots)
	rec.roots = slices.Compact(rec.roots)
	g.opens[key] = rec
	return committed
}

// drop ends an open's hold and gives back the writers no other open
// relies on.
func (g *Guard) drop(rec *openRec, why string) {
	var releases []func()
	g.mu.Lock()
	if g.opens[rec.key] != rec {
		g.mu.Unlock()
		return
	}
	delete(g.opens, rec.key)
	for _, rd := range rec.roots {
		t := g.holds[rd]
		if t == nil {
			continue
		}
		delete(t.opens, rec)
		if len(t.opens) == 0 {
			delete(g.holds, rd)
			releases = append(releases, t.release)
		}
	}
	g.mu.Unlock()
	for _, r := range releases {
		r()
	}
	if g.log.Enabled(g.ctx, slog.LevelDebug) {
		g.log.Debug("guard: hold ended", "pid", rec.key.pid, "file", rec.target.Path, "held", time.Since(rec.since), "why", why)
	}
}

// abandon takes back one open let through for key that never happened.
func (g *Guard) abandon(key openKey) {
	g.mu.Lock()
	rec := g.opens[key]
	last := false
	if rec != nil {
		rec.opens--
		last = rec.opens <= 0
	}
	g.mu.Unlock()
	if last {
		g.drop(rec, "opener gone before its open")
	}
}

// onClose handles a close of a guarded file by pid. The event says which
// file, not which open: a close by the holder itself ends its hold when it
// was the last of the opens let through (or, if the count says otherwise,
// when /proc shows no descriptor of the file left). A close by another
// process (a child that inherited the descriptor and closed it last) ends
// a hold only once no process has the file open.
func (g *Guard) onClose(pid int, file fileID) {
	for _, rec := range g.holdsOf(file) {
		if rec.key.pid == pid {
			g.mu.Lock()
			rec.opens--
			last := rec.opens <= 0
			g.mu.Unlock()
			if last || !g.proc.holding(pid, file) {
				g.drop(rec, "closed")
			}
			continue
		}
		if !g.proc.holding(rec.key.pid, file) && !g.proc.openedByAny(file, g.self) {
			g.drop(rec, "closed by another process")
		}
	}
}

func (g *Guard) holdsOf(file fileID) []*openRec {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*openRec
	for _, rec := range g.opens {
		if rec.key.file == file {
			out = append(out, rec)
		}
	}
	return out
}

// checkLoop looks at every hold each CheckInterval: one past HoldWarn is
// logged once with pid and command name; one whose file nobody has open
// any more ends. The latter is how a hold ends when the open failed after
// it was allowed (the kernel sends no close for a file that never
// opened) or when a close event was lost.
func (g *Guard) checkLoop() {
	tick := time.NewTicker(g.cfg.CheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-tick.C:
		}
		g.check(time.Now())
		g.dropDeadWaiters()
	}
}

func (g *Guard) check(now time.Time) {
	g.mu.Lock()
	recs := make([]*openRec, 0, len(g.opens))
	for _, rec := range g.opens {
		recs = append(recs, rec)
	}
	g.mu.Unlock()
	for _, rec := range recs {
		age := now.Sub(rec.since)
		if age < g.cfg.CheckInterval {
			continue // its open may not have returned yet
		}
		if !g.proc.holding(rec.key.pid, rec.key.file) && !g.proc.openedByAny(rec.key.file, g.self) {
			g.drop(rec, "file no longer open")
			continue
		}
		g.mu.Lock()
		warn := age >= g.cfg.HoldWarn && !rec.warned && g.opens[rec.key] == rec
		var roots []string
		if warn {
			rec.warned = true
			roots = slices.Clone(rec.roots)
		}
		g.mu.Unlock()
		if warn {
			g.log.Warn("guard: a process keeps a guarded file open, holding its writers",
				"pid", rec.key.pid, "comm", g.proc.comm(rec.key.pid), "file", rec.target.Path,
				"root_decoders", roots, "held", age.Round(time.Millisecond), "queued", g.QueueDepth())
		}
	}
}

// describeHolders names the processes holding any of the writers, for the
// log line of a refused open: "1234 (cxl) on decoder0.0". The daemon's own
// operations are not listed; "" if only they (or nobody) held the writers.
func (g *Guard) describeHolders(rds []string) string {
	type holder struct {
		pid int
		rd  string
	}
	var hs []holder
	g.mu.Lock()
	for _, rd := range rds {
		if t := g.holds[rd]; t != nil {
			for rec := range t.opens {
				hs = append(hs, holder{rec.key.pid, rd})
			}
		}
	}
	g.mu.Unlock()
	var names []string
	for _, h := range hs {
		names = append(names, fmt.Sprintf("%d (%s) on %s", h.pid, g.proc.comm(h.pid), h.rd))
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), ", ")
}
