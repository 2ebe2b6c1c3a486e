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
	r := newRig(t, []string{"decoder0.0"}, nil)
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
	guarded := func(tag, rd string) bool {
		t.Helper()
		p := r.startWriter(r.path(rd, "delete_region"), tag, time.Millisecond, 1)
		time.Sleep(150 * time.Millisecond)
		if _, ok := find(readLog(t, r.log), tag, "open"); ok {
			return false
		}
		_ = p.cmd.Process.Kill() // held: let the guard see it go
		<-p.done
		return true
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
