package region

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/cxlsim"
	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
	"github.com/cxlregion/cxlregiond/internal/uevent"
)

// TestFaults injects one fault per row into the simulated kernel, its
// uevents, or the daemon's own directories, runs a create / disable /
// enable / delete load through the engine, and checks after each row:
//
//   - every call returned nil or one of the engine's typed errors, within
//     its timeout (plus one second for the write in flight);
//   - no delete_region write named a region that was not there (no
//     generation deleted twice), and the kernel printed no WARNING or BUG;
//   - after the faults are cleared and one rescan, the engine's regions are
//     sysfs's (nothing half-made unreported);
//   - a restarted engine on the same state directory recovers, writes no
//     second delete, and converges as well.
//
// `make faults` runs it and prints the figures ("faults: N injected, M
// survived (R scenarios, S survived)"): a write or directory fault is one
// injection, a uevent scenario counts every event it dropped, duplicated,
// reordered or lost to a resync. A row whose fault never fired fails: it
// proved nothing.
//
// Mutations: write delete_region a second time after a successful write
// in writeDeleteRegion (internal/region/delete.go) and every row goes red
// with "second delete_region write"; make answerBy (answer.go) just call op
// and the slow-write rows go red with "answered after 1.5s, timeout 500ms".
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection runs in make faults and make test, not -short")
	}
	var injected, survived, rows, rowsSurvived atomic.Int64
	defer func() {
		fmt.Printf("faults: %d injected, %d survived (%d scenarios, %d survived; a uevent scenario perturbs many events)\n",
			injected.Load(), survived.Load(), rows.Load(), rowsSurvived.Load())
	}()
	row := func(t *testing.T, f func(t *testing.T) int) {
		rows.Add(1)
		n := f(t)
		if n == 0 {
			t.Fatal("the fault never fired")
		}
		injected.Add(int64(n))
		if !t.Failed() {
			survived.Add(int64(n))
			rowsSurvived.Add(1)
		}
	}

	attrs := attributesWritten(t)
	errnos := []unix.Errno{unix.EIO, unix.EBUSY, unix.ENXIO, unix.EINTR, unix.ENOMEM, unix.ENODEV}
	t.Run("write", func(t *testing.T) {
		for _, attr := range attrs {
			for _, errno := range errnos {
				t.Run(attr+"/"+unix.ErrnoName(errno), func(t *testing.T) {
					row(t, func(t *testing.T) int {
						h := newHarness(t)
						h.start(nil)
						before := h.k.FaultsFired()
						h.k.InjectFault(attr, errno, 1)
						h.load(t, 3*time.Second)
						n := h.k.FaultsFired() - before
						h.checkAfterFault(t)
						return n
					})
				})
			}
		}
	})

	t.Run("slow write", func(t *testing.T) {
		for _, attr := range []string{"create_pmem_region", "commit", "bind", "unbind", "delete_region"} {
			t.Run(attr, func(t *testing.T) {
				row(t, func(t *testing.T) int {
					h := newHarness(t)
					h.start(nil)
					// A region made in time, so that unbind and delete_region
					// are written even when a loaded machine makes every
					// 500 ms create time out.
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					pre, err := h.eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20})
					cancel()
					if err != nil {
						t.Fatal(err)
					}
					// The write outlasts the caller's timeout: the caller is
					// answered at its deadline, the write finishes later,
					// and what it did is found by the next rescan.
					before := h.k.FaultsFired()
					h.k.InjectDelay(attr, 1500*time.Millisecond)
					h.ops(t, 500*time.Millisecond, pre.Name)
					h.load(t, 500*time.Millisecond)
					h.k.ClearFaults()
					n := h.k.FaultsFired() - before
					time.Sleep(2 * time.Second) // the writes left in the kernel end
					h.checkAfterFault(t)
					return n
				})
			})
		}
	})

	t.Run("uevents", func(t *testing.T) {
		for _, mode := range []string{"drop", "duplicate", "reorder", "seqnum-gap", "overflow"} {
			t.Run(mode, func(t *testing.T) {
				row(t, func(t *testing.T) int {
					h := newHarness(t)
					var src *faultySource
					h.start(func(c *Config) {
						c.Events.Close()
						if mode == "overflow" {
							// Two slots: a create's burst overflows it, and
							// the subscription reports the loss as a resync.
							c.Events = h.k.Subscribe(2)
							src = &faultySource{src: c.Events}
						} else {
							src = &faultySource{src: h.k.Subscribe(4096), mode: mode}
						}
						c.Events = src
					})
					h.load(t, 3*time.Second)
					h.checkAfterFault(t)
					if mode == "overflow" {
						return int(src.resyncs.Load())
					}
					return int(src.injected.Load())
				})
			})
		}
	})

	t.Run("vanish mid-scan", func(t *testing.T) {
		for _, attr := range []string{"size", "uuid", "interleave_ways", "commit", "resource"} {
			t.Run(attr, func(t *testing.T) {
				row(t, func(t *testing.T) int {
					h := newHarness(t)
					v := &vanishing{Kernel: h.k, raw: h.fs, attr: attr}
					h.start(func(c *Config) { c.FS = sysfs.New(v) })
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					for range 2 {
						if _, err := h.eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20}); err != nil {
							t.Fatal(err)
						}
					}
					v.armed.Store(true)
					h.checkTyped(t, "rescan", time.Now(), 10*time.Second, h.eng.Rescan(ctx))
					v.armed.Store(false)
					h.checkAfterFault(t)
					return int(v.vanished.Load())
				})
			})
		}
	})

	t.Run("state dir", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to mount a small tmpfs as the state directory")
		}
		t.Run("ENOSPC", func(t *testing.T) {
			row(t, func(t *testing.T) int {
				h := newHarness(t)
				mountTmpfs(t, h.stateDir, "256k")
				h.start(nil)
				fill := exec.Command("dd", "if=/dev/zero", "of="+h.stateDir+"/fill", "bs=4k")
				_ = fill.Run() // ends with ENOSPC, as wanted
				// The journal's appends fill the page it has first: go on
				// until one fails.
				h.journalErrs = 0
				for i := 0; i < 40 && h.journalErrs == 0; i++ {
					h.load(t, 3*time.Second)
				}
				if err := os.Remove(h.stateDir + "/fill"); err != nil {
					t.Fatal(err)
				}
				h.checkAfterFault(t)
				return h.journalErrs
			})
		})
		// The journal holds its log open for writing, so the kernel refuses
		// to remount the directory read-only under a running engine
		// (EBUSY): the fault is a read-only state directory at start. The
		// engine refuses to start, naming it, and writes nothing.
		t.Run("read-only", func(t *testing.T) {
			row(t, func(t *testing.T) int {
				h := newHarness(t)
				mountTmpfs(t, h.stateDir, "256k")
				h.start(nil)
				h.shutdown()
				if out, err := exec.Command("mount", "-o", "remount,ro", h.stateDir).CombinedOutput(); err != nil {
					t.Fatalf("remount ro: %v: %s", err, out)
				}
				writes := len(h.k.Log())
				writers, err := lock.NewRegistry(h.fs, h.lockDir)
				if err != nil {
					t.Fatal(err)
				}
				cfg := h.testConfig()
				cfg.Writers = writers
				eng, err := New(cfg)
				if err == nil {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					err = eng.Run(ctx)
					cancel()
				}
				cfg.Events.Close()
				if !errors.Is(err, unix.EROFS) {
					t.Errorf("engine on a read-only state directory: %v, want a refusal wrapping EROFS", err)
				}
				if len(h.k.Log()) != writes {
					t.Errorf("the refused engine wrote: %v", h.k.Log()[writes:])
				}
				if out, err := exec.Command("mount", "-o", "remount,rw", h.stateDir).CombinedOutput(); err != nil {
					t.Fatalf("remount rw: %v: %s", err, out)
				}
				h.start(nil)
				h.load(t, 3*time.Second)
				h.checkAfterFault(t)
				return 1
			})
		})
	})

	t.Run("frozen root", func(t *testing.T) {
		row(t, func(t *testing.T) int {
			h := newHarness(t)
			h.start(nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r, err := h.eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20})
			if err != nil {
				t.Fatal(err)
			}
			// cxl_acpi unbound (taking every writer first, as the guard
			// does for that open): every root is torn down.
			var held []func()
			for _, rd := range h.eng.RootDecoders() {
				w, err := h.writers.Writer(rd.Name)
				if err != nil {
					t.Fatal(err)
				}
				hd, err := w.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, hd.Release)
			}
			if err := h.fs.Write(sysfs.ACPIUnbindPath, "ACPI0017:00"); err != nil {
				t.Fatal(err)
			}
			for _, release := range held {
				release()
			}
			after := len(h.k.Log())
			w0, err := h.writers.Writer("decoder0.0")
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "decoder0.0's writer to freeze", func() bool { frozen, _ := w0.Frozen(); return frozen })
			call := func(what string, f func(ctx context.Context) error) {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				h.checkTyped(t, what, time.Now(), 3*time.Second, f(ctx))
			}
			call("delete", func(ctx context.Context) error { return h.eng.Delete(ctx, DeleteRequest{Name: r.Name}) })
			call("disable", func(ctx context.Context) error { return h.eng.Disable(ctx, r.Name) })
			call("enable", func(ctx context.Context) error { return h.eng.Enable(ctx, r.Name) })
			call("create", func(ctx context.Context) error {
				_, err := h.eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20})
				return err
			})
			for _, l := range h.k.Log()[after:] {
				if writeLine.MatchString(l) {
					t.Errorf("a write reached the kernel after its root was torn down: %s", l)
				}
			}
			h.checkAfterFault(t)
			return 1
		})
	})

	t.Run("lock dir removed", func(t *testing.T) {
		row(t, func(t *testing.T) int {
			h := newHarness(t)
			h.start(nil)
			if err := os.RemoveAll(h.lockDir); err != nil {
				t.Fatal(err)
			}
			h.load(t, 3*time.Second)
			h.checkAfterFault(t)
			return 1
		})
	})
}

// attributesWritten runs the load once without faults and returns the
// attribute names the kernel received, one per file name.
func attributesWritten(t *testing.T) []string {
	h := newHarness(t)
	h.start(nil)
	h.load(t, 10*time.Second)
	h.checkAfterFault(t)
	h.shutdown()
	var attrs []string
	for _, l := range h.k.Log() {
		m := writeLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if a := path.Base(m[1]); !slices.Contains(attrs, a) {
			attrs = append(attrs, a)
		}
	}
	slices.Sort(attrs)
	if len(attrs) < 8 {
		t.Fatalf("the load wrote only %v", attrs)
	}
	return attrs
}

var writeLine = regexp.MustCompile(`^cxlsim: write (\S+) "([^"]*)" -> (\S+)`)

// load is the row's work: a region made before, then create, disable,
// enable and delete, each call with its own timeout, answered in time with
// a typed error or nil.
func (h *harness) load(t *testing.T, timeout time.Duration) {
	t.Helper()
	call := func(what string, f func(ctx context.Context) error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start := time.Now()
		h.checkTyped(t, what, start, timeout, f(ctx))
	}
	var first, second string
	call("create", func(ctx context.Context) error {
		r, err := h.eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20})
		first = r.Name
		return err
	})
	call("create", func(ctx context.Context) error {
		r, err := h.eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20})
		second = r.Name
		return err
	})
	h.ops(t, timeout, first, second)
}

// ops disables, enables and deletes each named region, each call with its
// own timeout ("" names are skipped).
func (h *harness) ops(t *testing.T, timeout time.Duration, names ...string) {
	t.Helper()
	call := func(what string, f func(ctx context.Context) error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		h.checkTyped(t, what, time.Now(), timeout, f(ctx))
	}
	for _, name := range names {
		if name == "" {
			continue
		}
		call("disable", func(ctx context.Context) error { return h.eng.Disable(ctx, name) })
		call("enable", func(ctx context.Context) error { return h.eng.Enable(ctx, name) })
		call("delete", func(ctx context.Context) error { return h.eng.Delete(ctx, DeleteRequest{Name: name}) })
	}
}

// checkTyped fails the test when err is of no kind the engine promises or
// came later than the caller's timeout allows (one second for a write
// already in the kernel).
func (h *harness) checkTyped(t *testing.T, what string, start time.Time, timeout time.Duration, err error) {
	t.Helper()
	if took := time.Since(start); took > timeout+time.Second {
		t.Errorf("%s answered after %v, timeout %v", what, took.Round(time.Millisecond), timeout)
	}
	var ke *KernelError
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrBusy) || errors.Is(err, ErrInvalid) ||
		errors.Is(err, ErrTimeout) || errors.Is(err, ErrFrozen) || errors.As(err, &ke) {
		return
	}
	// The state directory refusing the journal (full, read-only) is the
	// daemon's own failure, ErrJournal (the bus's JournalError), naming
	// the file and keeping the errno.
	var pe *fs.PathError
	if errors.Is(err, ErrJournal) && errors.As(err, &pe) && strings.HasPrefix(pe.Path, h.stateDir+"/") && (errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EROFS)) {
		h.journalErrs++
		return
	}
	t.Errorf("%s: error of no known kind: %v", what, err)
}

// checkAfterFault clears the faults and checks the row's invariants, then
// restarts the engine on the same state and checks them again.
func (h *harness) checkAfterFault(t *testing.T) {
	t.Helper()
	h.k.ClearFaults()
	for round := range 2 {
		// Writes still in the kernel (slow rows) finish first.
		time.Sleep(100 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := h.eng.Rescan(ctx)
		cancel()
		if err != nil {
			t.Fatalf("rescan after the fault: %v", err)
		}
		if warn, bug := h.counts(); warn != 0 || bug != 0 {
			t.Fatalf("kernel printed %d WARNING, %d BUG:\n%s", warn, bug, lastLines(h.k.Log(), 60))
		}
		if v := secondDeletes(h.k.Log()); len(v) > 0 {
			t.Fatalf("second delete_region write: %v", v)
		}
		topo, err := h.fs.Scan()
		if err != nil {
			t.Fatal(err)
		}
		var want, got []string
		for _, r := range topo.Regions {
			want = append(want, r.Name)
		}
		for _, r := range h.eng.Regions() {
			got = append(got, r.Name)
		}
		if !slices.Equal(want, got) {
			t.Fatalf("after a rescan the engine has %v, sysfs %v", got, want)
		}
		if round == 0 {
			h.shutdown()
			h.start(nil)
		}
	}
}

// secondDeletes reads the kernel's write log in order and returns each
// delete_region write that named a region not registered at the time:
// another delete of a generation already deleted.
func secondDeletes(log []string) []string {
	live := map[string]bool{}
	var bad []string
	for _, l := range log {
		m := writeLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		root := path.Base(path.Dir(m[1]))
		switch path.Base(m[1]) {
		case "create_pmem_region", "create_ram_region":
			if m[3] == "ok" {
				live[root+"/"+m[2]] = true
			}
		case "delete_region":
			key := root + "/" + m[2]
			if !live[key] {
				bad = append(bad, l)
			}
			if m[3] == "ok" {
				delete(live, key)
			}
		}
	}
	return bad
}

// faultySource perturbs the kernel's uevents on their way to the engine.
type faultySource struct {
	src  uevent.Source
	mode string

	n        int
	pending  []uevent.Event
	injected atomic.Int64
	resyncs  atomic.Int64
}

func (f *faultySource) Receive(ctx context.Context) (uevent.Event, error) {
	for {
		if len(f.pending) > 0 {
			e := f.pending[0]
			f.pending = f.pending[1:]
			return e, nil
		}
		e, err := f.src.Receive(ctx)
		if errors.Is(err, uevent.ErrResync) {
			f.resyncs.Add(1)
		}
		if err != nil {
			return e, err
		}
		f.n++
		switch f.mode {
		case "drop": // lost without a trace
			if f.n%2 == 0 {
				f.injected.Add(1)
				continue
			}
		case "duplicate":
			f.injected.Add(1)
			f.pending = append(f.pending, e)
		case "reorder": // this one after the next, or after a quiet 50 ms
			ctx2, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			next, err := f.src.Receive(ctx2)
			cancel()
			if err == nil {
				f.injected.Add(1)
				f.pending = append(f.pending, e)
				return next, nil
			}
		case "seqnum-gap": // every third event lost, the listener saw the gap
			if f.n%3 == 0 {
				f.injected.Add(1)
				return uevent.Event{}, &uevent.ResyncError{Err: fmt.Errorf("SEQNUM %d after %d", e.Seqnum+1, e.Seqnum-1)}
			}
		}
		return e, nil
	}
}

func (f *faultySource) Close() error { return f.src.Close() }

// vanishing is the simulated kernel as the engine's scan sees it: when
// armed, the first read of attr of a region deletes that region (another
// tool, raw) before the read is answered.
type vanishing struct {
	*cxlsim.Kernel
	raw      *sysfs.FS
	attr     string
	armed    atomic.Bool
	vanished atomic.Int64
	mu       sync.Mutex
}

func (v *vanishing) ReadFile(name string) ([]byte, error) {
	if v.armed.Load() && path.Base(name) == v.attr {
		region := path.Base(path.Dir(name))
		if regexp.MustCompile(`^region[0-9]+$`).MatchString(region) {
			v.mu.Lock()
			if v.armed.CompareAndSwap(true, false) {
				_ = v.raw.Write(sysfs.RegionUnbindPath, region)
				if v.raw.Write(attrPathOrInvalid("decoder0.0", "delete_region"), region) == nil {
					v.vanished.Add(1)
				}
			}
			v.mu.Unlock()
		}
	}
	return v.Kernel.ReadFile(name)
}

// mountTmpfs mounts a tmpfs of size at dir for the test's life.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}
