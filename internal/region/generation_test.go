package region

import (
	"testing"

	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// TestStaleReadingKeepsGeneration: the uevent follower reads a region one
// attribute at a time while a create is still writing it; a torn reading
// that started earlier but is applied later (uuid still empty) made the
// engine take its own region for a new, foreign generation (found by the
// benchmarks, about one create in a few hundred). Readings are ordered by
// the ticket taken when they start, and an older one is dropped.
//
// Mutation: make observeRegionLocked ignore readTicket and the generation
// changes.
func TestStaleReadingKeepsGeneration(t *testing.T) {
	writers, err := lock.NewRegistry(sysfs.Open(t.TempDir()), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{FS: sysfs.Open(t.TempDir()), Writers: writers, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	res := uint64(0x390000000)
	torn := sysfs.Region{Name: "region0", RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20}
	full := torn
	full.UUID, full.Resource = "a6d0c8ec-a2fb-4202-a662-84d58654eeef", &res

	older, newer := e.ticket(), e.ticket()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.creating["region0"] = true
	e.observeRegionLocked(full, false, 0, newer)
	gen := e.regions["region0"].gen
	e.observeRegionLocked(torn, false, 0, older)
	r := e.regions["region0"]
	if r.gen != gen || r.reg.UUID != full.UUID || r.origin != OriginDaemon {
		t.Fatalf("an older, torn reading replaced the region: gen %d→%d, uuid %q, origin %s", gen, r.gen, r.reg.UUID, r.origin)
	}
	// A newer reading still applies.
	again := full
	again.Committed = true
	e.observeRegionLocked(again, false, 0, e.tickets+1)
	if !e.regions["region0"].reg.Committed || e.regions["region0"].gen != gen {
		t.Fatal("a newer reading of the same generation was not applied")
	}
}
