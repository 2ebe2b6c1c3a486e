package guard

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestLockCommandChildPasses: a process started under `cxlregionctl lock
// decoder0.0 -- CMD` already holds the writer through the flock, so its
// open passes at once. The daemon's own operation is queued on the writer
// at the same time, holding the in-process turn while it waits for that
// flock: had the guard waited for the writer on the child's behalf, the
// child would wait for the daemon, the daemon for the lock process, and
// the lock process for its child.
//
// Mutation: drop the notFlocked step in admit and the child waits until
// QueueTimeout and is refused: the test fails on "refused" and on the
// observer count.
func TestLockCommandChildPasses(t *testing.T) {
	r := newRig(t, []string{"decoder0.0"}, func(c *Config) { c.QueueTimeout = 2 * time.Second })
	file := r.path("decoder0.0", "delete_region")
	lockPath := r.writer("decoder0.0").LockPath()

	lc := startLockCommand(t, r, lockPath, file)

	daemonDone := make(chan error, 1)
	go func() { daemonDone <- r.daemonWrite("decoder0.0", "delete_region", "daemon", time.Millisecond) }()
	w := r.writer("decoder0.0")
	waitFor(t, "the daemon's operation to hold the turn", func() bool { return w.QueueDepth() == 1 })

	lc.release(t, r)
	if err := <-daemonDone; err != nil {
		t.Fatal(err)
	}

	es := readLog(t, r.log)
	for _, e := range es {
		if e.what == "refused" {
			t.Fatalf("%s refused", e.tag)
		}
	}
	iv := intervals(t, es)
	if len(iv) != 3 {
		t.Fatalf("intervals %v, want the child's two and the daemon's", iv)
	}
	if ov := overlaps(iv); len(ov) > 0 {
		t.Fatalf("the daemon ran while the lock command held the writer: %s", ov[0])
	}
	r.obs.settle()
	if n := r.obs.count("delete_region", ResultPassed); n != 2 {
		t.Errorf("observer saw %d passed opens, want 2 (%s)", n, r.obs)
	}
}

// TestLockHolderWithIdleWriter covers the guard's fast path (a writer
// taken with TryAcquire needs no look at /proc/locks) where its answer
// matters: the daemon's turn is idle and `cxlregionctl lock decoder0.0`
// holds the flock. The lock command's child must pass (its parent holds
// the writer), and an unaware writer outside it ("stranger") must be held
// until the lock command lets go, never let through beside the child.
// With "stranger", the stranger's open is queued first: it holds the
// in-process turn while it waits for the flock, so the child's open finds
// the writer busy rather than idle.
//
// Mutations: TryAcquire skips the flock (internal/lock: a no-op unlock
// instead of tryLockFile) and the stranger is let through while the lock
// command holds the writer; admit hands tryAcquire's rest straight to
// acquire without notFlocked and the child waits for a writer its parent
// holds until it is refused.
func TestLockHolderWithIdleWriter(t *testing.T) {
	for _, stranger := range []bool{false, true} {
		t.Run(map[bool]string{false: "alone", true: "stranger"}[stranger], func(t *testing.T) {
			r := newRig(t, []string{"decoder0.0"}, func(c *Config) { c.QueueTimeout = 2 * time.Second })
			file := r.path("decoder0.0", "delete_region")
			lockPath := r.writer("decoder0.0").LockPath()

			lc := startLockCommand(t, r, lockPath, file)

			var s *proc
			if stranger {
				s = r.startWriter(file, "stranger", time.Millisecond, 1)
				waitFor(t, "the stranger's open to reach the guard", func() bool {
					_, opened := find(readLog(t, r.log), "stranger", "open")
					return opened || r.g.QueueDepth() == 1
				})
				r.assertNotOpened("stranger", 150*time.Millisecond)
			}
			lc.release(t, r)
			if s != nil {
				s.wait(t, 5*time.Second)
			}

			es := readLog(t, r.log)
			for _, e := range es {
				if e.what == "refused" {
					t.Fatalf("%s refused (%s)", e.tag, e.extra)
				}
			}
			iv := intervals(t, es)
			want := 2
			if stranger {
				want = 3
			}
			if len(iv) != want {
				t.Fatalf("intervals %v, want %d", iv, want)
			}
			if ov := overlaps(iv); len(ov) > 0 {
				t.Fatalf("the stranger had the file while the lock command held the writer: %s", ov[0])
			}
			if stranger {
				var closed int64 // the child's last close
				for _, e := range es {
					if e.tag == "child" && e.what == "close" {
						closed = max(closed, e.at)
					}
				}
				if opened, _ := find(es, "stranger", "open"); opened.at < closed {
					t.Fatal("the stranger opened before the lock command's child was done")
				}
			}
			r.obs.settle()
			if n := r.obs.count("delete_region", ResultPassed); n != 2 {
				t.Errorf("observer saw %d passed opens, want the child's 2 (%s)", n, r.obs)
			}
		})
	}
}

// lockCommand is the helper process standing in for `cxlregionctl lock
// decoder0.0 -- CMD`: it holds the writer's flock, then on "go" runs its
// child's opens of the guarded file and exits.
type lockCommand struct {
	stdin   io.WriteCloser
	stderr  *strings.Builder
	done    chan struct{}
	waitErr error // set before done is closed
}

// startLockCommand starts the lock command and returns once it holds the
// flock.
func startLockCommand(t *testing.T, r *rig, lockPath, file string) *lockCommand {
	t.Helper()
	cmd := exec.Command(os.Args[0], lockPath, file, r.log, "child", "20ms", "2")
	cmd.Env = helperEnviron("lockrun")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	lc := &lockCommand{stdin: stdin, stderr: &strings.Builder{}, done: make(chan struct{})}
	cmd.Stderr = lc.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		lc.waitErr = cmd.Wait()
		close(lc.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-lc.done
	})
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("lock helper said %q, %v: %s", line, err, lc.stderr.String())
	}
	return lc
}

// release lets the lock command's child run and waits for it to finish:
// a child stuck behind the writer its parent holds fails the test.
func (lc *lockCommand) release(t *testing.T, r *rig) {
	t.Helper()
	if _, err := lc.stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lc.done:
		if lc.waitErr != nil {
			t.Fatalf("lock helper: %v: %s", lc.waitErr, lc.stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the lock command's child is stuck behind the writer its parent holds: %v", readLog(t, r.log))
	}
}
