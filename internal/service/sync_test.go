package service

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/region"
)

// readCounter is the fake engine with its model reads counted.
type readCounter struct {
	*fakeEngine
	reads atomic.Int64
}

func (c *readCounter) Regions() []region.RegionInfo {
	c.reads.Add(1)
	return c.fakeEngine.Regions()
}

// TestSyncCoalesces: calls of sync that queue while another holds the
// tree are answered by one re-read of the engine, not one each, and every
// caller still finds its own change exported when sync returns.
func TestSyncCoalesces(t *testing.T) {
	const callers = 64
	eng := &readCounter{fakeEngine: newFakeEngine()}
	s, err := New(Config{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	s.tree.updateMu.Lock() // as a sync in progress
	asked := s.syncAsked.Load()
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { addAndSync(t, s, eng.fakeEngine, fmt.Sprintf("region%d", i)) })
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.syncAsked.Load() < asked+callers {
		if time.Now().After(deadline) {
			t.Fatal("callers did not reach sync")
		}
		time.Sleep(time.Millisecond)
	}
	before := eng.reads.Load()
	s.tree.updateMu.Unlock()
	wg.Wait()
	if n := eng.reads.Load() - before; n != 1 {
		t.Errorf("%d callers queued on one sync made %d re-reads of the engine, want 1", callers, n)
	}
}

// TestSyncCoversConcurrentCallers: free-running, each caller's change is
// exported when its sync returns.
func TestSyncCoversConcurrentCallers(t *testing.T) {
	eng := newFakeEngine()
	s, err := New(Config{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() { addAndSync(t, s, eng, fmt.Sprintf("region%d", i)) })
	}
	wg.Wait()
}

// addAndSync adds a region to the engine, syncs, and checks that the
// region is exported when sync returns.
func addAndSync(t *testing.T, s *Service, eng *fakeEngine, name string) {
	eng.mu.Lock()
	eng.addRegionLocked(name)
	eng.mu.Unlock()
	s.sync()
	p, _ := api.RegionPath(name)
	if _, ok := s.tree.get(p, api.RegionInterface); !ok {
		t.Errorf("sync returned before %s was exported", name)
	}
}
