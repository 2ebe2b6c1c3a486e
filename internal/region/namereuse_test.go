package region

import (
	"context"
	"testing"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// TestStaleDeleteSparesReusedName: a delete request for a region waits
// while another tool deletes the region and the kernel hands the name to a
// new region at the same HPA range. The stale request is NotFound and the
// new region is untouched (guarantee 2: a request naming a gone generation
// never hits a newer region that reuses the name). Without uevents (the
// socket overflowed, or they are still queued) only what the identity
// check under the writer reads tells the regions apart: a ram region has
// no uuid, so only its directory's inode number shows that it is new.
//
// Mutations: skip the generation check under the writer in
// deleteUnderWriter and every case deletes the new region; drop the Ino
// comparison from sameGeneration and "ram, no uevents" does.
func TestStaleDeleteSparesReusedName(t *testing.T) {
	for _, tc := range []struct {
		name, typ, root string
		uevents         bool
	}{
		{"pmem", "pmem", "decoder0.0", true},
		{"ram", "ram", "decoder0.2", true},
		{"pmem, no uevents", "pmem", "decoder0.0", false},
		{"ram, no uevents", "ram", "decoder0.2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			eng := h.start(func(c *Config) {
				if !tc.uevents {
					c.Events = nil
				}
			})
			ctx := context.Background()
			old, err := eng.Create(ctx, CreateRequest{RootDecoder: tc.root, Type: tc.typ, Size: 256 << 20})
			if err != nil {
				t.Fatal(err)
			}
			w, held := h.holdWriter(tc.root)
			result := make(chan error, 1)
			go func() { result <- eng.Delete(ctx, DeleteRequest{Name: old.Name, Generation: old.Generation}) }()
			waitFor(t, "the stale delete to queue", func() bool { return w.QueueDepth() == 2 })

			// Another tool, bypassing the daemon (the writer is busy, so
			// nothing races it): delete the region, free its capacity,
			// make a new one.
			attr := func(dev, a string) string { p, _ := sysfs.DeviceAttr(dev, a); return p }
			for _, wr := range [][2]string{
				{sysfs.RegionUnbindPath, old.Name},
				{attr(tc.root, "delete_region"), old.Name},
				{attr(old.Targets[0], "dpa_size"), "0"},
			} {
				if err := h.fs.Write(wr[0], wr[1]); err != nil {
					t.Fatal(err)
				}
			}
			reused := h.rawCreate(tc.root, tc.typ, 256<<20, []string{old.Targets[0]}, false)
			before, err := h.fs.ReadRegion(reused)
			if err != nil {
				t.Fatal(err)
			}
			if reused != old.Name || before.Resource == nil || *before.Resource != old.Resource {
				t.Fatalf("new region %s at %v: the test needs %s at %#x again", reused, before.Resource, old.Name, old.Resource)
			}
			held.Release()

			if err := <-result; !isErr(err, ErrNotFound) {
				t.Fatalf("stale delete = %v, want NotFound", err)
			}
			after, err := h.fs.ReadRegion(reused)
			if err != nil {
				t.Fatalf("new %s was deleted: %v", reused, err)
			}
			if after.UUID != before.UUID || after.Ino != before.Ino || !after.Committed {
				t.Fatalf("new %s changed: before %+v after %+v", reused, before, after)
			}
			if got := h.k.Writes(tc.root + "/delete_region"); got != 1 {
				t.Fatalf("delete_region writes = %d, want only the other tool's", got)
			}
			h.requireClean()
		})
	}
}
