package guard

import (
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestNotifyChangesFollowsQueueAndActive: NotifyChanges' function is
// called after every change of QueueDepth and Active, so the daemon's
// D-Bus properties follow them without a poll: what the function last saw
// is what they are, at each step: an open held behind another process's,
// the same open let through, the guard closed.
//
// Mutation: make depth.Add not notify → no call while A's and B's opens
// come and go: what the function last saw is stale from the first step.
func TestNotifyChangesFollowsQueueAndActive(t *testing.T) {
	r := newRig(t, []string{"decoder0.0"}, nil)
	type seen struct {
		depth  int
		active bool
	}
	var mu sync.Mutex
	var last seen
	calls := 0
	r.g.NotifyChanges(func() {
		mu.Lock()
		defer mu.Unlock()
		last = seen{r.g.QueueDepth(), r.g.Active()}
		calls++
	})
	await := func(what string, want seen) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			got, n := last, calls
			mu.Unlock()
			now := seen{r.g.QueueDepth(), r.g.Active()}
			if got == want && now == want && n > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: last notified %+v (%d calls), guard now %+v, want %+v", what, got, n, now, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	file := r.path("decoder0.0", "delete_region")
	a := r.startWriter(file, "A", time.Minute, 1)
	r.waitOpened("A")
	await("A holds the file", seen{0, true})
	b := r.startWriter(file, "B", 10*time.Millisecond, 1)
	await("B held behind A", seen{1, true})
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.wait(t, 8*time.Second)
	await("B let through", seen{0, true})
	if err := r.g.Close(); err != nil {
		t.Fatal(err)
	}
	await("guard closed", seen{0, false})
}
