package region

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestOriginSurvivesRestart: regions the daemon made keep origin daemon
// after a restart on the same kernel and state directory (so they do not
// fall under the foreign settle window), a region another tool made is
// not taken for the daemon's, and when the state directory's record
// cannot be read the origin is unknown, never a guess.
//
// Mutation: drop the e.made.origin case in observeRegionLocked and the
// daemon's regions come back as "kernel".
func TestOriginSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	eng := h.start(nil)
	var ours []RegionInfo
	for _, noBind := range []bool{false, true} {
		info, err := eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20, NoBind: noBind})
		if err != nil {
			t.Fatal(err)
		}
		ours = append(ours, info)
	}
	// Another tool's region, committed and bound, made while the daemon runs.
	foreign := h.rawCreate("decoder0.0", "pmem", 256<<20, []string{"decoder4.0"}, true)
	h.shutdown()

	want := map[string]Origin{ours[0].Name: OriginDaemon, ours[1].Name: OriginDaemon, foreign: OriginKernel}
	eng = h.start(nil)
	for name, origin := range want {
		info, err := eng.Region(name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Origin != origin {
			t.Errorf("after a restart %s has origin %q, want %q", name, info.Origin, origin)
		}
	}
	// A daemon region needs no foreign settle window after the restart.
	if err := eng.Delete(ctx, DeleteRequest{Name: ours[1].Name}); err != nil {
		t.Fatal(err)
	}
	h.shutdown()

	// An unreadable record: the committed regions' origin is unknown.
	if err := os.WriteFile(filepath.Join(h.stateDir, madeFile), []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	eng = h.start(nil)
	for _, name := range []string{ours[0].Name, foreign} {
		info, err := eng.Region(name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Origin != OriginUnknown {
			t.Errorf("with a torn record %s has origin %q, want unknown", name, info.Origin)
		}
	}
	h.requireClean()
}
