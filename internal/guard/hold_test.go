package guard

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitOpened waits until tag's open() has returned.
func (r *rig) waitOpened(tag string) entry {
	r.t.Helper()
	var e entry
	waitFor(r.t, tag+" to open", func() bool {
		var ok bool
		e, ok = find(readLog(r.t, r.log), tag, "open")
		return ok
	})
	return e
}

// assertNotOpened checks, after giving it time, that tag is still held.
func (r *rig) assertNotOpened(tag string, wait time.Duration) {
	r.t.Helper()
	time.Sleep(wait)
	es := readLog(r.t, r.log)
	for _, what := range []string{"open", "refused"} {
		if e, ok := find(es, tag, what); ok {
			r.t.Fatalf("%s got past the guard (%s %s) while the writer was held", tag, e.what, e.extra)
		}
	}
}

// TestKilledHolderReleases: a writer killed while it holds the file frees
// the writer for the next one (the kernel closes its descriptors, the
// guard sees the close).
//
// Mutation: make onClose ignore events (return at once) and B stays held
// until the holder check drops the dead holder, 5 s here: the "B opened
// promptly" bound fails.
func TestKilledHolderReleases(t *testing.T) {
	r := newRig(t, []string{"decoder0.0"}, func(c *Config) { c.CheckInterval = 5 * time.Second })
	file := r.path("decoder0.0", "delete_region")
	a := r.startWriter(file, "A", time.Minute, 1)
	r.waitOpened("A")
	b := r.startWriter(file, "B", 10*time.Millisecond, 1)
	waitFor(t, "B to be held", func() bool { return r.g.QueueDepth() == 1 })
	r.assertNotOpened("B", 100*time.Millisecond)

	killed := monoNow()
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.wait(t, 8*time.Second)
	got, ok := find(readLog(t, r.log), "B", "open")
	if !ok {
		t.Fatal("B never opened")
	}
	if got.at < killed {
		t.Fatalf("B opened %v before A was killed", time.Duration(killed-got.at))
	}
	if d := time.Duration(got.at - killed); d > 2*time.Second {
		t.Fatalf("B opened %v after A was killed: the kill did not release the writer", d)
	}
}

// TestCloseReleasesWaiters: when the guard closes (the daemon exits) every
// held open goes through at once, even while a holder keeps its file.
//
// Mutation: in Close, cancel the waits (g.cancel) and let them answer
// before closing the fanotify group: the waiters are refused (EPERM)
// instead of let through.
func TestCloseReleasesWaiters(t *testing.T) {
	r := newRig(t, []string{"decoder0.0"}, nil)
	file := r.path("decoder0.0", "delete_region")
	r.startWriter(file, "A", time.Minute, 1)
	r.waitOpened("A")
	b := r.startWriter(file, "B", time.Millisecond, 1)
	c := r.startWriter(file, "C", time.Millisecond, 1)
	waitFor(t, "B and C to be held", func() bool { return r.g.QueueDepth() == 2 })
	r.assertNotOpened("B", 50*time.Millisecond)
	r.assertNotOpened("C", 0)

	if !r.g.Active() {
		t.Fatal("guard not active before Close")
	}
	if err := r.g.Close(); err != nil {
		t.Fatal(err)
	}
	if r.g.Active() {
		t.Error("guard still active after Close")
	}
	b.wait(t, 3*time.Second)
	c.wait(t, 3*time.Second)
	es := readLog(t, r.log)
	for _, tag := range []string{"B", "C"} {
		if _, ok := find(es, tag, "open"); !ok {
			t.Errorf("%s was not let through on Close: %v", tag, es)
		}
	}
	if _, ok := find(es, "A", "close"); ok {
		t.Fatal("A closed: the test did not show waiters released while a holder holds")
	}
}

// TestRefusedAfterQueueTimeout: an opener queued behind a process that
// keeps the file open is refused with EPERM after QueueTimeout, never let
// through alongside it; the holder is logged past HoldWarn with its pid and
// command name.
//
// Mutation: answer a refused open with allow (g.answer(ev, true) in
// onOpen's goroutine) and B logs "open" while A still holds the file.
func TestRefusedAfterQueueTimeout(t *testing.T) {
	r := newRig(t, []string{"decoder0.0"}, func(c *Config) {
		c.QueueTimeout = 300 * time.Millisecond
		c.HoldWarn = 100 * time.Millisecond
		c.CheckInterval = 20 * time.Millisecond
	})
	file := r.path("decoder0.0", "delete_region")
	a := r.startWriter(file, "A", 1500*time.Millisecond, 1)
	r.waitOpened("A")
	start := monoNow()
	b := r.startWriter(file, "B", time.Millisecond, 1)
	b.wait(t, 3*time.Second)

	es := readLog(t, r.log)
	got, ok := find(es, "B", "refused")
	if !ok {
		t.Fatalf("B was not refused: %v", es)
	}
	if got.extra != "EPERM" {
		t.Errorf("B refused with %s, want EPERM", got.extra)
	}
	if d := time.Duration(got.at - start); d < 300*time.Millisecond {
		t.Errorf("B refused after %v, before QueueTimeout", d)
	}
	if _, ok := find(es, "A", "close"); ok {
		t.Fatal("A closed before B was refused: the test did not hold A long enough")
	}
	// The observer and the log hear of the refusal just after B has its
	// answer.
	deadline := time.Now().Add(3 * time.Second)
	for r.obs.count("delete_region", ResultRefused) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := r.obs.count("delete_region", ResultRefused); n != 1 {
		t.Errorf("observer saw %d refusals, want 1 (%s)", n, r.obs)
	}
	for _, want := range []string{
		"open refused (EPERM)",
		fmt.Sprintf("held_by=\"%d (guard.test) on decoder0.0\"", a.cmd.Process.Pid),
		fmt.Sprintf("keeps a guarded file open, holding its writers\" pid=%d comm=guard.test", a.cmd.Process.Pid),
	} {
		for !strings.Contains(r.logs.String(), want) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if logs := r.logs.String(); !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// TestSameProcessOpensTwice: a process that opens a guarded file a second
// time while holding it passes at once (waiting for the writer its first
// open holds would deadlock), and keeps the writer until its last
// descriptor is closed.
//
// Mutation: drop the rec.opens++ of a re-entrant open in plan and the
// first close ends the hold: B opens while A still has the file.
func TestSameProcessOpensTwice(t *testing.T) {
	r := newRig(t, []string{"decoder0.0"}, func(c *Config) { c.QueueTimeout = 3 * time.Second })
	file := r.path("decoder0.0", "delete_region")
	a := startHelper(t, "opentwice", file, r.log, "A", "200ms")
	r.waitOpened("A")
	b := r.startWriter(file, "B", time.Millisecond, 1)
	a.wait(t, 3*time.Second)
	b.wait(t, 3*time.Second)
	iv := intervals(t, readLog(t, r.log))
	if ov := overlaps(iv); len(ov) > 0 {
		t.Fatalf("B got the file while A still had it: %s", ov[0])
	}
	r.obs.settle()
	if n := r.obs.count("delete_region", ResultPassed); n != 1 {
		t.Errorf("observer saw %d passed opens, want A's second (%s)", n, r.obs)
	}
}

// TestInheritedDescriptorKeepsTheHold: when the opener hands its
// descriptor to a child and exits, the file is still open, so the writer
// stays held until the child closes it, although the holder is gone and
// the close comes from a process the guard never saw open.
//
// Mutation: make check drop a hold as soon as its own process has no
// descriptor left (skip openedByAny) and B opens right after A exits.
func TestInheritedDescriptorKeepsTheHold(t *testing.T) {
	r := newRig(t, []string{"decoder0.0"}, func(c *Config) {
		c.CheckInterval = 20 * time.Millisecond
		c.QueueTimeout = 3 * time.Second
	})
	file := r.path("decoder0.0", "delete_region")
	startHelper(t, "inherit", file, r.log, "A", "400ms").wait(t, 3*time.Second)
	opened, _ := find(readLog(t, r.log), "A", "open")
	b := r.startWriter(file, "B", time.Millisecond, 1)
	b.wait(t, 3*time.Second)
	got, ok := find(readLog(t, r.log), "B", "open")
	if !ok {
		t.Fatal("B never opened")
	}
	if d := time.Duration(got.at - opened.at); d < 350*time.Millisecond {
		t.Fatalf("B opened %v after A, while A's child still had the file", d)
	}
}

// TestKilledWaiterDoesNotKeepTheWriter: an opener killed while its open
// is held never opens; the writer taken for it when its turn comes must
// go straight to the next one, not sit until the holder check.
//
// Mutation: skip the abandon call in onOpen and B waits for the holder
// check (CheckInterval, 5 s here): "B opened ... after A closed" fails.
func TestKilledWaiterDoesNotKeepTheWriter(t *testing.T) {
	r := newRig(t, []string{"decoder0.0"}, func(c *Config) { c.CheckInterval = 5 * time.Second })
	file := r.path("decoder0.0", "delete_region")
	r.startWriter(file, "A", 300*time.Millisecond, 1)
	r.waitOpened("A")
	w := r.startWriter(file, "W", time.Millisecond, 1)
	waitFor(t, "W to be held", func() bool { return r.g.QueueDepth() == 1 })
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-w.done
	b := r.startWriter(file, "B", time.Millisecond, 1)
	waitFor(t, "B to be held behind W", func() bool { return r.g.QueueDepth() == 2 })
	b.wait(t, 3*time.Second)
	es := readLog(t, r.log)
	closed, _ := find(es, "A", "close")
	opened, ok := find(es, "B", "open")
	if !ok {
		t.Fatal("B never opened")
	}
	if d := time.Duration(opened.at - closed.at); d > time.Second {
		t.Fatalf("B opened %v after A closed: the killed waiter kept the writer", d)
	}
}

// TestKilledWaiterLeavesTheQueue: an opener killed while its open is held
// leaves QueueDepth at the next check and is not counted as refused.
//
// Mutation: drop dropDeadWaiters from checkLoop and W stays queued until
// QueueTimeout (10 s here): "W to leave the queue" times out.
func TestKilledWaiterLeavesTheQueue(t *testing.T) {
	r := newRig(t, []string{"decoder0.0"}, func(c *Config) { c.CheckInterval = 20 * time.Millisecond })
	file := r.path("decoder0.0", "delete_region")
	a := r.startWriter(file, "A", time.Minute, 1)
	r.waitOpened("A")
	w := r.startWriter(file, "W", time.Millisecond, 1)
	waitFor(t, "W to be held", func() bool { return r.g.QueueDepth() == 1 })
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-w.done
	waitFor(t, "W to leave the queue", func() bool { return r.g.QueueDepth() == 0 })
	if n := r.obs.count("delete_region", ResultRefused); n != 0 {
		t.Errorf("a killed waiter was counted as refused (%s)", r.obs)
	}
	_ = a.cmd.Process.Kill()
}

// TestShortLivedOpenersCounted: every open the guard lets through is
// counted, also when the opener has written, closed and exited before the
// guard looks at it again (`echo x > delete_region` under a slow
// scheduler: on the QEMU guests 40 % of ndctl's opens went uncounted).
//
// Mutation: skip the Observer when the opener is no longer alive and the
// count falls short.
func TestShortLivedOpenersCounted(t *testing.T) {
	const openers = 30
	r := newRig(t, []string{"decoder0.0"}, nil)
	file := r.path("decoder0.0", "delete_region")
	var procs []*proc
	for i := range openers {
		procs = append(procs, r.startWriter(file, fmt.Sprintf("once%d", i), 0, 1))
	}
	for _, p := range procs {
		p.wait(t, 20*time.Second)
	}
	r.obs.settle()
	got := r.obs.count("delete_region", ResultAllowed) + r.obs.count("delete_region", ResultWaited)
	if got != openers {
		t.Errorf("observer counted %d allowed/waited opens of %d openers (%s)", got, openers, r.obs)
	}
}
