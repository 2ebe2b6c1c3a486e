package region

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/lock"
)

// One create is one RegionAdded: the kernel's add uevent for the new region
// is applied while the create still holds the writer (on a real kernel it
// arrives within microseconds of the create_region write), and the create
// must not then take the generation that uevent made for an earlier region
// and publish added, removed, added. Mutation: make adopt remove the
// model's entry whatever its age and this test sees three events.
func TestOneCreateIsOneRegionAdded(t *testing.T) {
	for _, noBind := range []bool{true, false} {
		h := newHarness(t)
		var eng atomic.Pointer[Engine]
		var waited atomic.Bool
		// After the handshake write, hold the writer until the engine has
		// applied the add uevent: the order a real kernel gives.
		observe := func(attr string, _ time.Duration, err error) {
			if err != nil || !strings.HasSuffix(attr, "/create_pmem_region") {
				return
			}
			e := eng.Load()
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				if len(e.Regions()) == 1 {
					waited.Store(true)
					return
				}
			}
		}
		e := h.start(func(c *Config) {
			w, err := lock.NewRegistry(h.fs, h.lockDir, lock.WithWriteObserver(observe))
			if err != nil {
				t.Fatal(err)
			}
			c.Writers = w
		})
		eng.Store(e)
		ctx, cancel := context.WithCancel(context.Background())
		events, unsubscribe := e.Subscribe(ctx)
		r, err := e.Create(context.Background(), CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20, NoBind: noBind})
		if err != nil {
			t.Fatal(err)
		}
		if !waited.Load() {
			t.Fatalf("the add uevent of %s was not applied during the create: the test did not set up the order it checks", r.Name)
		}
		var got []string
		quiet := time.NewTimer(300 * time.Millisecond)
	collect:
		for {
			select {
			case ev := <-events:
				if (ev.Kind == RegionAdded || ev.Kind == RegionRemoved) && ev.Region.Name == r.Name {
					got = append(got, ev.Kind.String())
				}
				quiet.Reset(300 * time.Millisecond)
			case <-quiet.C:
				break collect
			}
		}
		cancel()
		unsubscribe()
		if len(got) != 1 || got[0] != "region_added" {
			t.Errorf("no_bind=%v: one create of %s published %q, want [region_added]", noBind, r.Name, got)
		}
		if r.Origin != OriginDaemon {
			t.Errorf("no_bind=%v: %s origin %q, want daemon", noBind, r.Name, r.Origin)
		}
		h.shutdown()
	}
}
