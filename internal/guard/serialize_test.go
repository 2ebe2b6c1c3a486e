package guard

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// serializeWorkload runs unaware writer processes and daemon operations on
// one root decoder's delete_region at the same time and returns their
// intervals. writers×cycles helper intervals plus daemons×cycles daemon
// ones.
func serializeWorkload(t *testing.T, r *rig, writers, daemons, cycles int, hold time.Duration) []interval {
	file := r.path("decoder0.0", "delete_region")
	var procs []*proc
	for i := range writers {
		procs = append(procs, r.startWriter(file, fmt.Sprintf("writer%d", i), hold, cycles))
	}
	var wg sync.WaitGroup
	errs := make(chan error, daemons*cycles)
	for i := range daemons {
		wg.Go(func() {
			for c := range cycles {
				errs <- r.daemonWrite("decoder0.0", "delete_region", fmt.Sprintf("daemon%d.%d", i, c), hold)
			}
		})
	}
	for _, p := range procs {
		p.wait(t, 20*time.Second)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	es := readLog(t, r.log)
	for _, e := range es {
		if e.what == "refused" {
			t.Fatalf("%s was refused (%s)", e.tag, e.extra)
		}
	}
	iv := intervals(t, es)
	if want := (writers + daemons) * cycles; len(iv) != want {
		t.Fatalf("got %d intervals, want %d", len(iv), want)
	}
	return iv
}

// TestSerializesUnawareWritersWithDaemon is guarantee 8: processes that
// know nothing of the daemon open delete_region at the same time as each
// other and as the daemon's writer, and no two of them ever have it at
// once.
//
// Mutation: make onOpen answer every open at once (g.answer(ev, true)
// before handing it to admit, i.e. allow all) and the guarded case fails
// with overlapping intervals, as the unguarded control shows.
func TestSerializesUnawareWritersWithDaemon(t *testing.T) {
	const writers, daemons, cycles, hold = 5, 2, 4, 15 * time.Millisecond

	t.Run("guarded", func(t *testing.T) {
		r := newRig(t, []string{"decoder0.0"}, nil)
		iv := serializeWorkload(t, r, writers, daemons, cycles, hold)
		if ov := overlaps(iv); len(ov) > 0 {
			t.Fatalf("%d overlapping writers, first: %s", len(ov), ov[0])
		}
		r.obs.settle()
		allowed := r.obs.count("delete_region", ResultAllowed) + r.obs.count("delete_region", ResultWaited)
		if allowed != writers*cycles {
			t.Errorf("observer saw %d allowed/waited opens, want %d (%s)", allowed, writers*cycles, r.obs)
		}
		if r.obs.count("delete_region", ResultWaited) == 0 {
			t.Errorf("no open had to wait: the writers never contended (%s)", r.obs)
		}
		if d := r.g.QueueDepth(); d != 0 {
			t.Errorf("QueueDepth after the run = %d", d)
		}
	})

	// The control proves the overlap check can fail: the same workload
	// with the guard closed does overlap.
	t.Run("unguarded control", func(t *testing.T) {
		r := newRig(t, []string{"decoder0.0"}, nil)
		if err := r.g.Close(); err != nil {
			t.Fatal(err)
		}
		iv := serializeWorkload(t, r, writers, daemons, cycles, hold)
		if len(overlaps(iv)) == 0 {
			t.Fatal("without the guard no writers overlapped: the workload cannot show serialization")
		}
	})
}

// TestMixedWorkload runs unaware writers of two root decoders, openers of
// cxl_region/bind (which need both writers) and the daemon's operations
// on both, all at once. Per root decoder nothing overlaps: its writers,
// its daemon operations and every bind opener.
//
// Mutation: make scope return only the first root decoder for driver
// files and a bind opener overlaps decoder1.0's writers.
func TestMixedWorkload(t *testing.T) {
	roots := []string{"decoder0.0", "decoder1.0"}
	r := newRig(t, roots, nil)
	const cycles, hold = 3, 10 * time.Millisecond
	var procs []*proc
	for _, rd := range roots {
		for i := range 3 {
			procs = append(procs, r.startWriter(r.path(rd, "delete_region"), fmt.Sprintf("%s/w%d", rd, i), hold, cycles))
		}
	}
	for i := range 2 {
		procs = append(procs, r.startWriter(filepath.Join(r.root, sysfs.RegionBindPath), fmt.Sprintf("bind/b%d", i), hold, cycles))
	}
	var wg sync.WaitGroup
	for _, rd := range roots {
		for i := range 2 {
			wg.Go(func() {
				for c := range cycles {
					if err := r.daemonWrite(rd, "delete_region", fmt.Sprintf("%s/daemon%d.%d", rd, i, c), hold); err != nil {
						t.Error(err)
					}
				}
			})
		}
	}
	for _, p := range procs {
		p.wait(t, 30*time.Second)
	}
	wg.Wait()
	all := intervals(t, readLog(t, r.log))
	if want := (3*2 + 2 + 2*2) * cycles; len(all) != want {
		t.Fatalf("got %d intervals, want %d", len(all), want)
	}
	for _, rd := range roots {
		var mine []interval
		for _, iv := range all {
			if strings.HasPrefix(iv.tag, rd+"/") || strings.HasPrefix(iv.tag, "bind/") {
				mine = append(mine, iv)
			}
		}
		if ov := overlaps(mine); len(ov) > 0 {
			t.Errorf("%s: %d overlaps, first: %s", rd, len(ov), ov[0])
		}
	}
}

// TestRootDecodersIndependent: a held root decoder does not hold up the
// writers of another; the kernel serializes nothing between them and
// neither does the guard.
func TestRootDecodersIndependent(t *testing.T) {
	r := newRig(t, []string{"decoder0.0", "decoder1.0"}, nil)
	a := r.startWriter(r.path("decoder0.0", "delete_region"), "A", time.Minute, 1)
	r.waitOpened("A")
	r.startWriter(r.path("decoder1.0", "delete_region"), "B", time.Millisecond, 1).wait(t, 3*time.Second)
	if _, ok := find(readLog(t, r.log), "B", "open"); !ok {
		t.Fatal("decoder1.0's writer waited for decoder0.0's holder")
	}
	_ = a.cmd.Process.Kill()
}
