package service

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/cxlregion/cxlregiond/internal/region"
)

// fakeEngine is an in-memory engine: it records every request that reaches
// it, so a test can prove a refused call never did.
type fakeEngine struct {
	mu      sync.Mutex
	ready   chan struct{}
	regions map[string]region.RegionInfo
	roots   []region.RootDecoderInfo
	nextID  int
	nextGen uint64
	calls   []string
	deletes []region.DeleteRequest
	subs    []chan region.Event
	// fail, when set, is returned by every mutating call.
	fail error
	// gate, when set, makes mutating calls wait for it to close.
	gate chan struct{}
	// afterCommit, when set, makes Create wait for it to close once past
	// its point of no return, where cancelling no longer stops it.
	afterCommit chan struct{}
}

func newFakeEngine() *fakeEngine {
	e := &fakeEngine{
		ready:   make(chan struct{}),
		regions: map[string]region.RegionInfo{},
		roots: []region.RootDecoderInfo{{
			Name: "decoder0.0", Port: "root0", CapPmem: true, Size: 4 << 30, FreeCapacity: 4 << 30,
			InterleaveWays: 1, InterleaveGranularity: 256, Targets: []string{"pci0000:0c"},
		}},
		nextGen: 1,
	}
	close(e.ready)
	return e
}

func (e *fakeEngine) Ready() <-chan struct{} { return e.ready }

func (e *fakeEngine) Subscribe(ctx context.Context) (<-chan region.Event, func()) {
	ch := make(chan region.Event, 256)
	e.mu.Lock()
	e.subs = append(e.subs, ch)
	e.mu.Unlock()
	return ch, func() {}
}

func (e *fakeEngine) publishLocked(ev region.Event) {
	for _, ch := range e.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (e *fakeEngine) Regions() []region.RegionInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]region.RegionInfo, 0, len(e.regions))
	for _, r := range e.regions {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (e *fakeEngine) MemdevCapacities() []region.MemdevCapacity {
	return []region.MemdevCapacity{{Memdev: "mem0", Total: 1 << 30, Allocated: 256 << 20, Free: 768 << 20, Stranded: 256 << 20,
		Decoders: []region.DecoderCapacity{{Name: "decoder3.0", Memdev: "mem0", Mode: "pmem", DPASize: 256 << 20, Stranded: true}}}}
}

func (e *fakeEngine) RootDecoders() []region.RootDecoderInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]region.RootDecoderInfo(nil), e.roots...)
}

func (e *fakeEngine) KernelFeatures() []string { return []string{"create_pmem_region"} }

// addRegion puts a region in the model as if the kernel had made it.
func (e *fakeEngine) addRegion(name string) region.RegionInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addRegionLocked(name)
}

func (e *fakeEngine) addRegionLocked(name string) region.RegionInfo {
	r := region.RegionInfo{
		Name: name, Generation: e.nextGen, RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20,
		Resource: 0x1000000000, UUID: "0ae1f9aa-7a1c-4e2b-9bb4-3b2f3e44a001", InterleaveWays: 1,
		InterleaveGranularity: 256, Targets: []string{"decoder2.0"}, Memdevs: []string{"mem0"},
		State: region.StateEnabled, Origin: region.OriginDaemon, Settled: true, FirstSeen: time.Now(),
	}
	e.nextGen++
	e.regions[name] = r
	e.publishLocked(region.Event{Kind: region.RegionAdded, Region: r})
	return r
}

func (e *fakeEngine) setState(name string, st region.State) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.regions[name]
	r.State = st
	e.regions[name] = r
	e.publishLocked(region.Event{Kind: region.RegionChanged, Region: r})
}

func (e *fakeEngine) record(ctx context.Context, call string) error {
	e.mu.Lock()
	e.calls = append(e.calls, call)
	gate, fail := e.gate, e.fail
	e.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s: %w", call, region.ErrTimeout)
			}
			return fmt.Errorf("%s: %w", call, ctx.Err())
		}
	}
	return fail
}

func (e *fakeEngine) Calls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.calls...)
}

func (e *fakeEngine) Create(ctx context.Context, req region.CreateRequest) (region.RegionInfo, error) {
	if err := e.record(ctx, "create "+req.RootDecoder); err != nil {
		return region.RegionInfo{}, err
	}
	// As region.Engine.Create: before commit a cancelled create rolls back
	// (here: adds nothing); after it, it finishes whatever ctx does.
	if err := region.PointOfNoReturn(ctx); err != nil {
		return region.RegionInfo{}, fmt.Errorf("create on %s: before commit: %w", req.RootDecoder, err)
	}
	e.mu.Lock()
	after := e.afterCommit
	e.mu.Unlock()
	if after != nil {
		<-after
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	name := fmt.Sprintf("region%d", e.nextID)
	e.nextID++
	return e.addRegionLocked(name), nil
}

func (e *fakeEngine) Delete(ctx context.Context, req region.DeleteRequest) error {
	e.mu.Lock()
	e.deletes = append(e.deletes, req)
	e.mu.Unlock()
	if err := e.record(ctx, "delete "+req.Name); err != nil {
		return err
	}
	if err := region.PointOfNoReturn(ctx); err != nil {
		return fmt.Errorf("delete %s: cancelled before its first write: %w", req.Name, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.regions[req.Name]
	if !ok || (req.Generation != 0 && r.Generation != req.Generation) {
		return fmt.Errorf("delete %s: %w", req.Name, region.ErrNotFound)
	}
	delete(e.regions, req.Name)
	e.publishLocked(region.Event{Kind: region.RegionRemoved, Region: r})
	return nil
}

func (e *fakeEngine) Enable(ctx context.Context, name string) error {
	return e.record(ctx, "enable "+name)
}

func (e *fakeEngine) DisableWith(ctx context.Context, name string, _ region.MemoryOptions) error {
	return e.Disable(ctx, name)
}

func (e *fakeEngine) Disable(ctx context.Context, name string) error {
	return e.record(ctx, "disable "+name)
}

func (e *fakeEngine) Rescan(ctx context.Context) error {
	return e.record(ctx, "rescan")
}
