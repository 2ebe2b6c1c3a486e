package guard

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/lock"
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
