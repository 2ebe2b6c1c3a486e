package guard

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// TestUpdateFollowsTopology: marks follow the root decoders the daemon
// reports, including one that went away and came back as a new file.
// Every writer is held by the daemon throughout, so a marked file's open
// is held and an unmarked one's goes through.
func TestUpdateFollowsTopology(t *testing.T) {
	// A short CheckInterval: each held probe is killed and must leave the
	// queue before the next step.
	r := newRig(t, []string{"decoder0.0"}, func(c *Config) { c.CheckInterval = 20 * time.Millisecond })
	r.makeFile("decoder1.0", "delete_region")
	held := map[string]*lock.Held{}
	for _, rd := range []string{"decoder0.0", "decoder1.0"} {
		h, err := r.writer(rd).Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		held[rd] = h
	}
	t.Cleanup(func() {
		for _, h := range held {
			h.Release()
		}
	})
	// guarded starts a writer and reports whether the guard held its open
	// (it shows in QueueDepth) or let it through (it opened and finished).
	guarded := func(tag, rd string) bool {
		t.Helper()
		p := r.startWriter(r.path(rd, "delete_region"), tag, time.Millisecond, 1)
		var held bool
		waitFor(t, tag+" to be held or to finish", func() bool {
			select {
			case <-p.done:
				return true
			default:
			}
			held = r.g.QueueDepth() == 1
			return held
		})
		if held {
			_ = p.cmd.Process.Kill() // let the guard see it go
			<-p.done
			waitFor(t, tag+" to leave the queue", func() bool { return r.g.QueueDepth() == 0 })
			return true
		}
		if _, ok := find(readLog(t, r.log), tag, "open"); !ok {
			t.Fatalf("%s finished without opening: %s", tag, p.stderr.String())
		}
		return false
	}
	steps := []struct {
		name     string
		roots    []string
		recreate string
		probe    string
		want     bool
	}{
		{"not yet listed", nil, "", "decoder1.0", false},
		{"listed", []string{"decoder0.0", "decoder1.0"}, "", "decoder1.0", true},
		{"removed from the list", []string{"decoder1.0"}, "", "decoder0.0", false},
		{"still listed", []string{"decoder1.0"}, "", "decoder1.0", true},
		{"gone and back as a new file", []string{"decoder1.0"}, "decoder1.0", "decoder1.0", true},
	}
	for i, s := range steps {
		if s.recreate != "" {
			p := r.path(s.recreate, "delete_region")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			r.touch(p)
		}
		if s.roots != nil {
			if err := r.g.Update(s.roots); err != nil {
				t.Fatal(err)
			}
		}
		if got := guarded("probe"+string(rune('a'+i)), s.probe); got != s.want {
			t.Fatalf("%s: open of %s held = %v, want %v", s.name, s.probe, got, s.want)
		}
	}
}

// TestUnmarkedFilesMakeTheGuardInactive (issue 16): a guarded file the
// guard cannot mark is one whose opens it does not hold, so an unaware
// writer of it races the daemon. The guard reported itself active (the
// D-Bus GuardActive, cxlregiond_guard_active) even when every mark had
// failed. Now one unmarked file makes it inactive, Unmarked names it, the
// change is logged, and a later Update that marks it makes the guard
// active again. The marks fail here the way any path can: the file is a
// symbolic link loop (ELOOP).
//
// Mutation: make Active return g.active.Load() alone (as it did) and the
// guard stays active with every mark failed.
func TestUnmarkedFilesMakeTheGuardInactive(t *testing.T) {
	r := newRig(t, []string{"decoder0.0"}, nil)
	if !r.g.Active() || len(r.g.Unmarked()) != 0 {
		t.Fatalf("every file marked: Active %v, Unmarked %v", r.g.Active(), r.g.Unmarked())
	}
	files := []string{r.path("decoder0.0", "delete_region"), r.path("decoder0.0", "create_pmem_region")}
	for _, p := range []string{sysfs.RegionBindPath, sysfs.RegionUnbindPath, sysfs.ACPIUnbindPath} {
		files = append(files, filepath.Join(r.root, p))
	}
	unmarkable := func(p string) {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Base(p), p); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct {
		name   string
		broken []string
	}{
		{"one file", files[:1]},
		{"every file", files},
	} {
		for _, p := range s.broken {
			unmarkable(p)
		}
		if err := r.g.Update([]string{"decoder0.0"}); !errors.Is(err, unix.ELOOP) {
			t.Fatalf("%s unmarkable: Update = %v, want ELOOP", s.name, err)
		}
		if r.g.Active() {
			t.Errorf("%s unmarkable: the guard reports itself active", s.name)
		}
		got := r.g.Unmarked()
		if len(got) != len(s.broken) {
			t.Errorf("%s unmarkable: Unmarked = %q, want %d files", s.name, got, len(s.broken))
		}
		for _, p := range s.broken {
			if !slices.ContainsFunc(got, func(u string) bool { return strings.Contains(u, p) }) {
				t.Errorf("%s unmarkable: Unmarked = %q does not name %s", s.name, got, p)
			}
		}
		for _, p := range s.broken {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			r.touch(p)
		}
	}
	if !strings.Contains(r.logs.String(), "guard inactive: files not marked") {
		t.Errorf("no log of the unmarked files:\n%s", r.logs.String())
	}
	if err := r.g.Update([]string{"decoder0.0"}); err != nil {
		t.Fatal(err)
	}
	if !r.g.Active() || len(r.g.Unmarked()) != 0 {
		t.Fatalf("every file marked again: Active %v, Unmarked %v", r.g.Active(), r.g.Unmarked())
	}
	if !strings.Contains(r.logs.String(), "guard active: every guarded file is marked again") {
		t.Errorf("no log of the guard marking every file again:\n%s", r.logs.String())
	}
}
