package service

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/region"
)

// settlingEngine is the fake engine with regions that settle by time
// alone, as region.Engine's do: Settled turns true at a region's
// SettleCheckAt with no event. Its model reads are counted: each full sync
// reads Regions once.
type settlingEngine struct {
	*fakeEngine
	reads atomic.Int64

	mu       sync.Mutex
	settleAt map[string]time.Time
}

func newSettlingEngine() *settlingEngine {
	return &settlingEngine{fakeEngine: newFakeEngine(), settleAt: map[string]time.Time{}}
}

// addSettling adds a region (RegionAdded) that settles at at.
func (e *settlingEngine) addSettling(name string, at time.Time) {
	e.mu.Lock()
	e.settleAt[name] = at
	e.mu.Unlock()
	e.addRegion(name)
}

func (e *settlingEngine) Regions() []region.RegionInfo {
	e.reads.Add(1)
	out := e.fakeEngine.Regions()
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	for i, r := range out {
		if at, ok := e.settleAt[r.Name]; ok && now.Before(at) {
			out[i].Settled, out[i].SettleCheckAt = false, at
		}
	}
	return out
}

// settledSignal waits for the PropertiesChanged that turns a region's
// Settled true and returns when it came.
func settledSignal(t *testing.T, sigs <-chan *dbus.Signal, path dbus.ObjectPath, within time.Duration) time.Time {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case s := <-sigs:
			if s.Name != api.PropertiesInterface+".PropertiesChanged" || s.Path != path || len(s.Body) < 2 {
				continue
			}
			if v, ok := s.Body[1].(map[string]dbus.Variant)[api.PropSettled]; ok && v.Value() == true {
				return time.Now()
			}
		case <-timeout:
			t.Fatalf("%s: Settled did not turn true within %v", path, within)
			return time.Time{}
		}
	}
}

// TestSettledTurnsTrueAtSettleCheckAt: a region that settles by time alone
// (another tool's, once the settle window has passed with no change) is
// shown Settled on the bus at its SettleCheckAt, with no event after it
// was added and no periodic re-read: the service's one timer is armed for
// it.
//
// Mutation: make follow not arm its timer (arm returns at once) → Settled
// stays false on the bus.
func TestSettledTurnsTrueAtSettleCheckAt(t *testing.T) {
	eng := newSettlingEngine()
	h := startService(t, eng.fakeEngine, func(c *Config) { c.Engine = eng })
	sigs := h.signals(t)
	const window = 300 * time.Millisecond
	at := time.Now().Add(window)
	eng.addSettling("region0", at)
	p, _ := api.RegionPath("region0")
	got := settledSignal(t, sigs, p, 10*time.Second)
	if got.Before(at) {
		t.Errorf("Settled shown %v before the region settled", at.Sub(got))
	}
	// A second region, settling sooner than the first would have: the
	// timer follows the earliest.
	eng.addSettling("region1", time.Now().Add(window))
	eng.addSettling("region2", time.Now().Add(3*window))
	p1, _ := api.RegionPath("region1")
	settledSignal(t, sigs, p1, 10*time.Second)
	p2, _ := api.RegionPath("region2")
	settledSignal(t, sigs, p2, 10*time.Second)
}

// TestIdleServiceDoesNotSync: once every region has settled and nothing
// happens, the service reads nothing: no periodic re-export of the whole
// model (at 4096 regions that cost 254 ms of CPU a second, bench
// BenchmarkIdle). Counted through the engine's model reads over an idle
// interval: 0.
//
// Mutation: put back a ticker in follow (e.g. time.NewTicker(100 *
// time.Millisecond), a sync on each tick) → reads during the idle
// interval.
func TestIdleServiceDoesNotSync(t *testing.T) {
	eng := newSettlingEngine()
	h := startService(t, eng.fakeEngine, func(c *Config) { c.Engine = eng })
	sigs := h.signals(t)
	eng.addSettling("region0", time.Now().Add(100*time.Millisecond))
	p, _ := api.RegionPath("region0")
	settledSignal(t, sigs, p, 10*time.Second)
	time.Sleep(50 * time.Millisecond) // the settle's own sync has returned
	before := eng.reads.Load()
	time.Sleep(time.Second)
	if n := eng.reads.Load() - before; n != 0 {
		t.Errorf("an idle service read the model %d times in 1 s, want 0", n)
	}
}

// TestQueueDepthWithoutFullSync: a root decoder's queue depth reaches the
// bus from its RootDecoderChanged event alone, without re-reading every
// region: a writer's queue moves with every operation and every open the
// guard holds.
//
// Mutation: make needOf return syncAll for RootDecoderChanged → the
// regions are read again.
func TestQueueDepthWithoutFullSync(t *testing.T) {
	eng := newSettlingEngine()
	eng.addRegion("region0")
	h := startService(t, eng.fakeEngine, func(c *Config) { c.Engine = eng })
	sigs := h.signals(t)
	time.Sleep(50 * time.Millisecond)
	before := eng.reads.Load()
	eng.fakeEngine.mu.Lock()
	eng.roots[0].QueueDepth = 2
	eng.publishLocked(region.Event{Kind: region.RootDecoderChanged, RootDecoder: eng.roots[0]})
	eng.fakeEngine.mu.Unlock()
	path, _ := api.RootDecoderPath("decoder0.0")
	s := waitSignal(t, sigs, api.PropertiesInterface+".PropertiesChanged", path)
	if v, ok := s.Body[1].(map[string]dbus.Variant)[api.PropQueueDepth]; !ok || v.Value() != uint32(2) {
		t.Fatalf("PropertiesChanged on %s = %v, want QueueDepth 2", path, s.Body)
	}
	if n := eng.reads.Load() - before; n != 0 {
		t.Errorf("a queue depth change read every region %d times, want 0", n)
	}
}

// TestGuardChangesArePushed: GuardQueue and GuardActive reach the bus when
// the guard says they changed (Config.GuardChanged), not on a poll, and
// without re-reading the regions.
//
// Mutation: drop the GuardChanged case from follow → no PropertiesChanged
// on the Manager.
func TestGuardChangesArePushed(t *testing.T) {
	eng := newSettlingEngine()
	var depth atomic.Int64
	var active atomic.Bool
	changed := make(chan struct{}, 1)
	h := startService(t, eng.fakeEngine, func(c *Config) {
		c.Engine = eng
		c.GuardQueueDepth = func() int { return int(depth.Load()) }
		c.GuardActive = active.Load
		c.GuardChanged = changed
	})
	sigs := h.signals(t)
	time.Sleep(50 * time.Millisecond)
	before := eng.reads.Load()
	depth.Store(3)
	active.Store(true)
	changed <- struct{}{}
	s := waitSignal(t, sigs, api.PropertiesInterface+".PropertiesChanged", api.ManagerPath)
	diff := s.Body[1].(map[string]dbus.Variant)
	if v, ok := diff[api.PropGuardQueue]; !ok || v.Value() != uint32(3) {
		t.Errorf("Manager PropertiesChanged = %v, want GuardQueue 3", diff)
	}
	if v, ok := diff[api.PropGuardActive]; !ok || v.Value() != true {
		t.Errorf("Manager PropertiesChanged = %v, want GuardActive true", diff)
	}
	if n := eng.reads.Load() - before; n != 0 {
		t.Errorf("a guard change read every region %d times, want 0", n)
	}
}
