package region

import (
	"context"
	"testing"
)

// TestCrashAtEveryJournalPoint abandons the engine at each journal point
// of a create and of a delete, as a killed daemon would stop, then starts a
// new engine on the same simulated kernel and state directory. It must
// converge: no half-made region, no allocated endpoint decoder left
// behind, no WARNING or BUG, and never a second delete_region write for a
// region (guarantee 5 and 2).
//
// The points are the closed set crashPoints() (a typed enum the compiler
// checks), so a new point is covered here without editing the test.
//
// Mutation: make recover do nothing and the create cases leave regions and
// allocations behind; make recoverDelete write delete_region without the
// identity check and the "delete:written" case writes twice.
func TestCrashAtEveryJournalPoint(t *testing.T) {
	ctx := context.Background()
	for _, point := range crashPoints() {
		t.Run(point.String(), func(t *testing.T) {
			h := newHarness(t)
			isDelete := point.isDelete()
			var victim RegionInfo
			if isDelete {
				eng := h.start(nil)
				var err error
				victim, err = eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20})
				if err != nil {
					t.Fatal(err)
				}
				h.shutdown()
			}
			eng := h.start(func(c *Config) { c.crashAt = func(p crashPoint) bool { return p == point } })
			var err error
			if isDelete {
				err = eng.Delete(ctx, DeleteRequest{Name: victim.Name})
			} else {
				_, err = eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20})
			}
			if !isErr(err, errCrashed) {
				t.Fatalf("operation did not stop at %s: %v", point, err)
			}
			h.shutdown()

			eng = h.start(nil)
			if point == crashDeleteBegin {
				// Dead before the intent was written: the delete never
				// started and its caller saw it fail. The region stays.
				if _, err := eng.Region(victim.Name); err != nil {
					t.Fatalf("region lost after a crash before its delete began: %v", err)
				}
				if err := eng.Delete(ctx, DeleteRequest{Name: victim.Name}); err != nil {
					t.Fatal(err)
				}
			}
			if regs := eng.Regions(); len(regs) != 0 {
				t.Fatalf("after recovery the model still has %+v", regs)
			}
			topo, err := h.fs.Scan()
			if err != nil {
				t.Fatal(err)
			}
			if len(topo.Regions) != 0 {
				t.Fatalf("after recovery sysfs still has %+v", topo.Regions)
			}
			for _, ed := range topo.EndpointDecoders {
				if ed.DPASize != 0 {
					t.Fatalf("after recovery %s still holds %d bytes", ed.Name, ed.DPASize)
				}
			}
			if got := h.k.Writes("decoder0.0/delete_region"); got > 1 {
				t.Fatalf("delete_region written %d times for one region", got)
			}
			if left := eng.journal.Unfinished(); len(left) != 0 {
				t.Fatalf("journal still holds %+v", left)
			}
			h.requireClean()
			// The recovered engine works.
			r, err := eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if err := eng.Delete(ctx, DeleteRequest{Name: r.Name}); err != nil {
				t.Fatal(err)
			}
			h.requireClean()
		})
	}
}
