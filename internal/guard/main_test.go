package guard

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// The guard holds other processes' opens, so the writers in these tests
// are child processes: this test binary re-run in a helper mode. The
// daemon is the test process itself (its own opens pass).
const helperEnv = "CXLREGIOND_GUARD_HELPER"

func TestMain(m *testing.M) {
	switch mode := os.Getenv(helperEnv); mode {
	case "":
		os.Exit(m.Run())
	case "open":
		os.Exit(helperOpen(os.Args[1:]))
	case "opentwice":
		os.Exit(helperOpenTwice(os.Args[1:]))
	case "inherit":
		os.Exit(helperInherit(os.Args[1:]))
	case "lockrun":
		os.Exit(helperLockRun(os.Args[1:]))
	case "openloop":
		os.Exit(helperOpenLoop(os.Args[1:]))
	case "unprivileged":
		os.Exit(helperUnprivileged())
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		os.Exit(2)
	}
}

// helperEnviron is the environment of a helper process in mode. Race
// detector binaries sleep a second at exit unless told otherwise, and a
// helper's exit is what the next writer waits for.
func helperEnviron(mode string) []string {
	return append(os.Environ(), helperEnv+"="+mode, "GORACE=atexit_sleep_ms=0")
}

// monoNow is CLOCK_MONOTONIC in ns: unlike Go's monotonic readings it is
// comparable between processes.
func monoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

// appendLog adds one line to the shared interval log. O_APPEND keeps the
// lines of concurrent processes whole.
func appendLog(path, tag, what string, extra ...string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	fields := append([]string{tag, what, strconv.FormatInt(monoNow(), 10)}, extra...)
	if _, err := f.WriteString(strings.Join(fields, " ") + "\n"); err != nil {
		panic(err)
	}
}

// helperOpen is an unaware writer, like `sh -c 'echo x > FILE'`, repeated:
// args FILE LOG TAG HOLD CYCLES. It logs when open() returned and when it
// is about to close, so the logged interval lies inside the time it had
// the file open.
func helperOpen(args []string) int {
	if len(args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: FILE LOG TAG HOLD CYCLES")
		return 2
	}
	file, logPath, tag := args[0], args[1], args[2]
	hold, err := time.ParseDuration(args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cycles, err := strconv.Atoi(args[4])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for range cycles {
		fd, err := unix.Open(file, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600)
		if err != nil {
			appendLog(logPath, tag, "refused", unix.ErrnoName(err.(unix.Errno)))
			continue
		}
		appendLog(logPath, tag, "open")
		_, _ = unix.Write(fd, []byte("x\n"))
		time.Sleep(hold)
		appendLog(logPath, tag, "close")
		unix.Close(fd)
	}
	return 0
}

// helperOpenTwice opens FILE twice (the second open must not wait for the
// writer its own first open holds), closes the first descriptor, keeps the
// second for HOLD and closes it: args FILE LOG TAG HOLD.
func helperOpenTwice(args []string) int {
	file, logPath, tag := args[0], args[1], args[2]
	hold, err := time.ParseDuration(args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var fds []int
	for range 2 {
		fd, err := unix.Open(file, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fds = append(fds, fd)
	}
	appendLog(logPath, tag, "open")
	unix.Close(fds[0])
	time.Sleep(hold)
	appendLog(logPath, tag, "close")
	unix.Close(fds[1])
	return 0
}

// helperInherit opens FILE, hands the descriptor to a `sleep HOLD` child,
// closes its own and exits at once: the file stays open in the child, and
// the last close comes from a process the guard did not let in. Args FILE
// LOG TAG HOLD.
func helperInherit(args []string) int {
	file, logPath, tag := args[0], args[1], args[2]
	hold, err := time.ParseDuration(args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	appendLog(logPath, tag, "open")
	child := exec.Command("sleep", strconv.FormatFloat(hold.Seconds(), 'f', 3, 64))
	child.ExtraFiles = []*os.File{f}
	if err := child.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f.Close()
	return 0
}

// helperLockRun is `cxlregionctl lock`: args LOCKFILE then helperOpen's.
// It takes the flock, says "locked", waits for a line on stdin, runs the
// writer as its child and unlocks once the child is done.
func helperLockRun(args []string) int {
	unlock, err := lock.LockFile(context.Background(), args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer unlock()
	fmt.Println("locked")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return 1
	}
	child := exec.Command(os.Args[0], args[1:]...)
	child.Env = helperEnviron("open")
	child.Stderr = os.Stderr
	if err := child.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// helperUnprivileged drops root and tries New: exit 0 if the error wraps
// ErrUnsupported, 3 if New succeeded, 1 otherwise.
func helperUnprivileged() int {
	if err := syscall.Setgid(65534); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := syscall.Setuid(65534); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	g, err := New(Config{Writers: nopWriters{}})
	if err == nil {
		g.Close()
		return 3
	}
	fmt.Println(err)
	if errors.Is(err, ErrUnsupported) {
		return 0
	}
	return 1
}

type nopWriters struct{}

func (nopWriters) Acquire(context.Context, string) (func(), error) { return func() {}, nil }
func (nopWriters) TryAcquire(string) (func(), bool)                { return func() {}, true }
func (nopWriters) LockPath(string) (string, error)                 { return "/nonexistent", nil }

// requireFanotify skips when this kernel or sandbox gives no fanotify
// permission events, saying why.
func requireFanotify(t testing.TB) {
	t.Helper()
	g, err := openGroup()
	if err == nil {
		err = g.probe()
		g.close()
	}
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("fanotify permission events unavailable here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// rig is a guard over ordinary files standing in for a sysfs tree at
// root, with the daemon's real writer registry.
type rig struct {
	t    *testing.T
	root string
	log  string // the shared interval log
	reg  *lock.Registry
	g    *Guard
	obs  *observed
	logs *lockedBuffer
}

func newRig(t *testing.T, roots []string, tweak func(*Config)) *rig {
	t.Helper()
	requireFanotify(t)
	dir := t.TempDir()
	r := &rig{t: t, root: filepath.Join(dir, "sys"), log: filepath.Join(dir, "intervals.log"),
		obs: &observed{}, logs: &lockedBuffer{}}
	for _, rd := range roots {
		r.makeFile(rd, "delete_region")
		r.makeFile(rd, "create_pmem_region")
	}
	for _, p := range []string{sysfs.RegionBindPath, sysfs.RegionUnbindPath, sysfs.ACPIUnbindPath} {
		r.touch(filepath.Join(r.root, p))
	}
	reg, err := lock.NewRegistry(sysfs.Open(r.root), filepath.Join(dir, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	r.reg = reg
	cfg := Config{
		Writers:   LockWriters(reg),
		SysfsRoot: r.root,
		Observer:  r.obs.observe,
		Logger:    slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		// Short bounds keep a broken guard from stalling the run; the
		// tests that exercise them set their own.
		QueueTimeout: 10 * time.Second,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.g = g
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("guard log:\n%s", r.logs.String())
		}
	})
	if err := g.Update(roots); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) attr(rd, attr string) string {
	p, err := sysfs.DeviceAttr(rd, attr)
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

func (r *rig) path(rd, attr string) string { return filepath.Join(r.root, r.attr(rd, attr)) }

func (r *rig) makeFile(rd, attr string) { r.touch(r.path(rd, attr)) }

func (r *rig) touch(p string) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o200); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) writer(rd string) *lock.Writer {
	w, err := r.reg.Writer(rd)
	if err != nil {
		r.t.Fatal(err)
	}
	return w
}

// daemonWrite is one of the daemon's own operations: a turn of rd's writer
// that writes attr (its own open passes the guard) and keeps the turn for
// hold, logged as an interval under tag.
func (r *rig) daemonWrite(rd, attr, tag string, hold time.Duration) error {
	return r.writer(rd).Do(context.Background(), func(ctx context.Context, tx *lock.Tx) error {
		appendLog(r.log, tag, "open")
		if err := tx.Write(r.attr(rd, attr), "x"); err != nil {
			return err
		}
		time.Sleep(hold)
		appendLog(r.log, tag, "close")
		return nil
	})
}

// proc is a started helper process.
type proc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	stderr bytes.Buffer
}

func startHelper(t *testing.T, mode string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(os.Args[0], args...), done: make(chan struct{})}
	p.cmd.Env = helperEnviron(mode)
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// startWriter starts an unaware writer process (helperOpen).
func (r *rig) startWriter(file, tag string, hold time.Duration, cycles int) *proc {
	return startHelper(r.t, "open", file, r.log, tag, hold.String(), strconv.Itoa(cycles))
}

func (p *proc) wait(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("helper %v: %v: %s", p.cmd.Args, p.err, p.stderr.String())
		}
	case <-time.After(within):
		t.Fatalf("helper %v still running after %v", p.cmd.Args, within)
	}
}

// entry is one line of the interval log.
type entry struct {
	tag, what string
	at        int64
	extra     string
}

func readLog(t *testing.T, path string) []entry {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []entry
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		at, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		e := entry{tag: f[0], what: f[1], at: at}
		if len(f) > 3 {
			e.extra = f[3]
		}
		out = append(out, e)
	}
	return out
}

func find(es []entry, tag, what string) (entry, bool) {
	for _, e := range es {
		if e.tag == tag && e.what == what {
			return e, true
		}
	}
	return entry{}, false
}

// interval is the time one writer had a file open (or a writer's turn).
type interval struct {
	tag        string
	start, end int64
}

// intervals pairs each writer's open with its next close.
func intervals(t *testing.T, es []entry) []interval {
	t.Helper()
	open := make(map[string]int64)
	var out []interval
	for _, e := range es {
		switch e.what {
		case "open":
			if _, dup := open[e.tag]; dup {
				t.Fatalf("%s opened twice without closing", e.tag)
			}
			open[e.tag] = e.at
		case "close":
			s, ok := open[e.tag]
			if !ok {
				t.Fatalf("%s closed without an open", e.tag)
			}
			delete(open, e.tag)
			out = append(out, interval{tag: e.tag, start: s, end: e.at})
		}
	}
	if len(open) != 0 {
		t.Fatalf("unclosed intervals: %v", open)
	}
	slices.SortFunc(out, func(a, b interval) int { return int(a.start - b.start) })
	return out
}

// overlaps lists the pairs of intervals that overlap.
func overlaps(iv []interval) []string {
	var out []string
	for i := 1; i < len(iv); i++ {
		for j := 0; j < i; j++ {
			if iv[i].start < iv[j].end {
				out = append(out, fmt.Sprintf("%s [%d,%d] overlaps %s [%d,%d]",
					iv[i].tag, iv[i].start, iv[i].end, iv[j].tag, iv[j].start, iv[j].end))
			}
		}
	}
	return out
}

// observed counts what the guard told its Observer.
type observed struct {
	mu sync.Mutex
	n  map[string]int // "kind/result"
}

func (o *observed) observe(kind, result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = make(map[string]int)
	}
	o.n[kind+"/"+result]++
}

// settle waits until the observer has heard nothing new for 50 ms (at most
// 3 s): the guard reports an open just after it has answered it, so a
// child can exit before its open is counted.
func (o *observed) settle() {
	last, quiet := o.String(), time.Now()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		if cur := o.String(); cur != last {
			last, quiet = cur, time.Now()
		} else if time.Since(quiet) >= 50*time.Millisecond {
			return
		}
	}
}

func (o *observed) count(kind, result string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[kind+"/"+result]
}

func (o *observed) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Sprint(o.n)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
