package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Guard holds other processes' opens of the guarded files until the
// writers they need are free. Create it with New, tell it the root
// decoders with Update, stop it with Close.
type Guard struct {
	cfg  Config
	log  *slog.Logger
	grp  *group
	proc procFS
	self int

	// ctx ends at Close: opens still waiting for writers give up.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the read loop, the holder check, every open being decided

	// changes holds NotifyChanges' function; queued tells it each change.
	changes changes
	queued  depth
	active  atomic.Bool // the fanotify group runs: from New until Close or its failure
	// marked is true once an Update has marked every guarded file present
	// (a file the mark failed on is an open the guard does not hold).
	marked atomic.Bool

	waitMu  sync.Mutex           // guards waiting
	waiting map[*waiter]struct{} // opens being decided, for the check of their openers

	mu     sync.Mutex       // guards marks, byFile, roots, holds, opens and closed
	marks  map[string]*mark // by path
	byFile map[fileID]*mark
	roots  []string // the current root decoders, sorted: the order writers are taken in
	// unmarked is the guarded files the last Update could not mark, by
	// path, with the reason; Update tries them again.
	unmarked map[string]error
	holds    map[string]*tenancy
	opens    map[openKey]*openRec
	closed   bool
}

// mark is one marked file. pathFD (O_PATH) pins the file and lets the
// mark be removed after the path is gone.
type mark struct {
	target Target
	file   fileID
	pathFD int
}

// New starts a guard. Nothing is marked until Update. The error wraps
// ErrUnsupported when this host cannot run it.
func New(cfg Config) (*Guard, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	grp, err := openGroup()
	if err != nil {
		return nil, err
	}
	if err := grp.probe(); err != nil {
		grp.close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Guard{
		cfg:    c,
		log:    c.Logger,
		grp:    grp,
		proc:   procFS{root: "/proc", pidfds: true},
		self:   os.Getpid(),
		ctx:    ctx,
		cancel: cancel,
		marks:  make(map[string]*mark),
		byFile: make(map[fileID]*mark),
		holds:  make(map[string]*tenancy),
		opens:  make(map[openKey]*openRec),

		waiting: make(map[*waiter]struct{}),
	}
	if _, err := readDirNames("/proc/1/fd"); err != nil {
		g.log.Warn("guard: cannot read other processes' descriptors (CAP_SYS_PTRACE?); a hold whose close event is lost ends only when its process exits", "err", err)
	}
	g.queued.changes = &g.changes
	g.active.Store(true)
	g.wg.Go(g.readLoop)
	g.wg.Go(g.checkLoop)
	return g, nil
}

// Active reports whether the guard holds every open it should: true once
// an Update has marked every guarded file present, until Close, the
// fanotify group's failure, or an Update that could not mark one of them
// (Unmarked says which). A guard that holds some files' opens and not
// others' is not active: an unaware writer of an unmarked file races.
func (g *Guard) Active() bool { return g.active.Load() && g.marked.Load() }

// Unmarked describes the guarded files the last Update could not mark,
// each with the reason, sorted.
func (g *Guard) Unmarked() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return describeUnmarked(g.unmarked)
}

func describeUnmarked(unmarked map[string]error) []string {
	out := make([]string, 0, len(unmarked))
	for _, err := range unmarked {
		out = append(out, err.Error()) // markFile's errors name the path
	}
	slices.Sort(out)
	return out
}

// QueueDepth is the number of opens being held right now, waiting for
// writers (or for regions to settle).
func (g *Guard) QueueDepth() int { return int(g.queued.Load()) }

// NotifyChanges registers f to be called whenever QueueDepth or Active may
// have changed, so that their readers (the daemon's D-Bus properties and
// status line) follow changes instead of polling. f may be called with the
// guard's locks held, from any of its goroutines: it must not block or
// take them (a non-blocking send on a channel; QueueDepth and Active are
// safe to read). A later call replaces f; nil removes it.
func (g *Guard) NotifyChanges(f func()) {
	if f == nil {
		g.changes.f.Store(nil)
		return
	}
	g.changes.f.Store(&f)
}

// changes is NotifyChanges' function.
type changes struct{ f atomic.Pointer[func()] }

func (c *changes) notify() {
	if f := c.f.Load(); f != nil {
		(*f)()
	}
}

// depth is QueueDepth's count; each change is told to NotifyChanges'
// function.
type depth struct {
	atomic.Int64
	changes *changes
}

func (d *depth) Add(n int64) int64 {
	v := d.Int64.Add(n)
	d.changes.notify()
	return v
}

// Update makes the marks follow the topology: it marks the guarded files
// of the given root decoders and the driver files, and unmarks what is no
// longer listed or no longer exists. A file whose path now leads to a
// different file (a root decoder that went and came back) is re-marked.
// Opens of the driver files need the writers of exactly these root
// decoders. The error joins every file that could not be marked; the
// others are marked regardless, and the guard is not Active until a later
// Update marks them. A change in the set of unmarked files is logged.
func (g *Guard) Update(rootDecoders []string) error {
	roots := slices.Clone(rootDecoders)
	slices.Sort(roots)
	roots = slices.Compact(roots)
	want := make(map[string]Target)
	for _, t := range g.cfg.Targets(roots) {
		want[t.Path] = t
	}
	if g.cfg.MemoryTargets != nil {
		for _, t := range g.cfg.MemoryTargets() {
			want[t.Path] = t
		}
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("guard: closed")
	}
	g.roots = roots
	var errs []error
	unmarked := make(map[string]error)
	for path, m := range g.marks {
		t, ok := want[path]
		if id, err := pathID(path); ok && err == nil && id == m.file {
			m.target = t
			delete(want, path)
			continue
		}
		g.unmarkLocked(m)
	}
	for path, t := range want {
		m, err := g.markFile(t)
		if errors.Is(err, unix.ENOENT) {
			g.log.Debug("guard: file not present, not marked", "path", path)
			continue
		}
		if err != nil {
			errs = append(errs, err)
			unmarked[path] = err
			continue
		}
		g.marks[path] = m
		g.byFile[m.file] = m
	}
	g.setUnmarkedLocked(unmarked)
	return errors.Join(errs...)
}

// setUnmarkedLocked records the files an Update could not mark, and says so
// when that changes: the guard stops being Active while any is unmarked.
func (g *Guard) setUnmarkedLocked(unmarked map[string]error) {
	changed := len(unmarked) != len(g.unmarked)
	for path := range unmarked {
		if _, ok := g.unmarked[path]; !ok {
			changed = true
		}
	}
	g.unmarked = unmarked
	if g.marked.Swap(len(unmarked) == 0) != (len(unmarked) == 0) {
		g.changes.notify()
	}
	switch {
	case !changed:
	case len(unmarked) != 0:
		g.log.Error("guard inactive: files not marked, other processes' opens of them are not serialized",
			"unmarked", describeUnmarked(unmarked), "marked", len(g.marks))
	default:
		g.log.Info("guard active: every guarded file is marked again", "marked", len(g.marks))
	}
}

func (g *Guard) markFile(t Target) (*mark, error) {
	fd, err := unix.Open(t.Path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("guard: mark %s: %w", t.Path, err)
	}
	id, err := fstatID(fd)
	if err == nil {
		err = g.grp.markFD(unix.FAN_MARK_ADD, fd)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("guard: mark %s: %w", t.Path, err)
	}
	g.log.Debug("guard: marked", "path", t.Path, "kind", t.Kind, "root_decoder", t.RootDecoder)
	return &mark{target: t, file: id, pathFD: fd}, nil
}

func (g *Guard) unmarkLocked(m *mark) {
	// The file may be gone with its mark already (the root decoder was
	// torn down); the descriptor is what has to go.
	_ = g.grp.markFD(unix.FAN_MARK_REMOVE, m.pathFD)
	unix.Close(m.pathFD)
	delete(g.marks, m.target.Path)
	if g.byFile[m.file] == m {
		delete(g.byFile, m.file)
	}
	g.log.Debug("guard: unmarked", "path", m.target.Path)
}

// Close stops the guard. Closing the fanotify group first makes the
// kernel allow every open still held; then the waits are abandoned and
// every writer held for another process is given back.
func (g *Guard) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()

	g.active.Store(false)
	g.changes.notify()
	err := g.grp.close()
	g.cancel()
	g.wg.Wait()

	g.mu.Lock()
	var releases []func()
	for _, t := range g.holds {
		releases = append(releases, t.release)
	}
	clear(g.holds)
	clear(g.opens)
	for _, m := range g.marks {
		unix.Close(m.pathFD)
	}
	clear(g.marks)
	clear(g.byFile)
	g.mu.Unlock()
	for _, r := range releases {
		r()
	}
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("guard: close: %w", err)
	}
	return nil
}

// readLoop takes events off the group until it is closed.
func (g *Guard) readLoop() {
	buf := make([]byte, 4096*metadataLen)
	var evs []event // reused: a read's events are dispatched before the next
	for {
		n, err := g.grp.read(buf)
		if errors.Is(err, os.ErrClosed) {
			return
		}
		if err != nil {
			// The kernel failed to hand over one event (it could not open
			// the file for us: EACCES, EMFILE) and answered it FAN_DENY.
			g.log.Warn("guard: fanotify read failed; the kernel refused that open", "err", err)
			continue
		}
		evs, err = parseEvents(evs[:0], buf[:n])
		for _, ev := range evs {
			g.dispatch(ev)
		}
		if err != nil {
			// An ABI this code does not know: answering wrongly could
			// wedge writers, so stop and let the kernel allow everything.
			g.log.Error("guard: unreadable fanotify events; guard stops, opens are no longer held", "err", err)
			g.active.Store(false)
			g.changes.notify()
			g.grp.close()
			return
		}
	}
}

// dispatch handles one event. Every permission event is answered exactly
// once, and every event descriptor closed exactly once, by dispatch or by
// the goroutine it hands the open to.
func (g *Guard) dispatch(ev event) {
	switch {
	case ev.fd < 0:
		if ev.mask&unix.FAN_Q_OVERFLOW != 0 {
			g.log.Warn("guard: fanotify queue overflow; close events may be lost, holders are rechecked")
		}
	case ev.mask&unix.FAN_OPEN_PERM != 0:
		g.onOpen(ev)
	default:
		if ev.mask&(unix.FAN_CLOSE_WRITE|unix.FAN_CLOSE_NOWRITE) != 0 && ev.pid != g.self {
			if id, err := fstatID(int(ev.fd)); err == nil {
				g.onClose(ev.pid, id)
			}
		}
		unix.Close(int(ev.fd))
	}
}

// answer sends the verdict for a permission event and closes its
// descriptor. It returns false if the kernel no longer waited for it: the
// opener was killed while held (ENOENT), or the guard closed.
func (g *Guard) answer(ev event, allow bool) bool {
	err := g.grp.respond(ev.fd, allow)
	unix.Close(int(ev.fd))
	switch {
	case err == nil:
		return true
	case errors.Is(err, unix.ENOENT):
		g.log.Debug("guard: the opener stopped waiting", "pid", ev.pid)
	case !errors.Is(err, os.ErrClosed):
		g.log.Warn("guard: fanotify response failed", "pid", ev.pid, "allow", allow, "err", err)
	}
	return false
}
