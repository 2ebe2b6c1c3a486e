package guard

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// TestMemoryBlockTakesItsRootWriter: an open of a memory block's state
// file over a region of decoder0.0 waits for decoder0.0's writer (the
// daemon may be offlining the region's memory), and only for that one; an
// open of the dax drivers' bind waits for every writer.
//
// Mutation: leave KindMemoryBlock out of perRoot and the open waits for
// decoder1.0's writer too ("state opened while only decoder1.0 was held"
// never happens); drop MemoryTargets from Update and the open goes
// through while decoder0.0's writer is held.
func TestMemoryBlockTakesItsRootWriter(t *testing.T) {
	var state string
	r := newRig(t, []string{"decoder0.0", "decoder1.0"}, func(c *Config) {
		c.MemoryTargets = func() []Target {
			return MemoryBlockTargets(c.SysfsRoot, map[string][]string{"decoder0.0": {"memory115"}})
		}
	})
	p, _ := sysfs.MemoryBlockStatePath("memory115")
	state = filepath.Join(r.root, p)
	r.touch(state)
	kmemBind := filepath.Join(r.root, sysfs.DaxDriverPath(sysfs.DaxDriverKmem, "bind"))
	r.touch(kmemBind)
	if err := r.g.Update([]string{"decoder0.0", "decoder1.0"}); err != nil {
		t.Fatal(err)
	}

	// The other root decoder's writer held: the state file opens at once.
	h1, err := r.writer("decoder1.0").Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r.startWriter(state, "state-free", time.Millisecond, 1).wait(t, 3*time.Second)
	// ... but the dax driver's bind needs every writer.
	bind := r.startWriter(kmemBind, "kmem-bind", time.Millisecond, 1)
	r.assertNotOpened("kmem-bind", 150*time.Millisecond)
	h1.Release()
	bind.wait(t, 3*time.Second)

	// Its own root decoder's writer held: the open waits for it.
	h0, err := r.writer("decoder0.0").Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p0 := r.startWriter(state, "state-held", time.Millisecond, 1)
	r.assertNotOpened("state-held", 150*time.Millisecond)
	released := monoNow()
	h0.Release()
	p0.wait(t, 3*time.Second)
	if e, _ := find(readLog(t, r.log), "state-held", "open"); e.at < released {
		t.Fatal("memory115/state opened while decoder0.0's writer was held")
	}
	r.obs.settle()
	if n := r.obs.count("memory_block", ResultWaited) + r.obs.count("memory_block", ResultAllowed); n != 2 {
		t.Errorf("observer saw %d memory_block opens, want 2 (%s)", n, r.obs)
	}
}

// TestRefuseDelete: with RefuseDelete set (--guard-refuse-online-memory),
// an open of delete_region is refused with EPERM while it says no, and
// goes through once it says yes; without it the open would be let through
// (serialized, but let through).
//
// Mutation: drop the RefuseDelete call in admit and "refused" never comes.
func TestRefuseDelete(t *testing.T) {
	online := make(chan bool, 1)
	online <- true
	r := newRig(t, []string{"decoder0.0"}, func(c *Config) {
		c.RefuseDelete = func(rd string) error {
			on := <-online
			online <- on
			if on && rd == "decoder0.0" {
				return errors.New("region0 has memory online")
			}
			return nil
		}
	})
	del := r.path("decoder0.0", "delete_region")
	r.startWriter(del, "while-online", time.Millisecond, 1).wait(t, 3*time.Second)
	e, ok := find(readLog(t, r.log), "while-online", "refused")
	if !ok || e.extra != "EPERM" {
		t.Fatalf("open while memory online: %+v (found %v), want refused with EPERM", e, ok)
	}
	<-online
	online <- false
	r.startWriter(del, "offline-now", time.Millisecond, 1).wait(t, 3*time.Second)
	if _, ok := find(readLog(t, r.log), "offline-now", "open"); !ok {
		t.Fatal("open refused after the memory went offline")
	}
}
