package region

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// A create reports its point of no return once, under the writer, before
// commit is written; a cancel that arrives by then rolls the create back
// (the D-Bus Job.Cancel path), one that arrives later cannot stop it.
// Mutation: in createRun.do call ctx.Err() instead of PointOfNoReturn and
// the hook is never called; "cancel at the point" then commits.
func TestCreatePointOfNoReturn(t *testing.T) {
	for _, tt := range []struct {
		name        string
		cancelAtIt  bool
		cancelAfter bool
	}{
		{name: "not cancelled"},
		{name: "cancel at the point", cancelAtIt: true},
		{name: "cancel after it", cancelAfter: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			eng := h.start(nil)
			before, err := h.fs.Scan()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var calls, commitsThen atomic.Int32
			ctx = OnPointOfNoReturn(ctx, func() {
				calls.Add(1)
				commitsThen.Store(int32(h.k.Writes("commit")))
				if tt.cancelAtIt {
					cancel()
				}
			})
			if tt.cancelAfter {
				go func() {
					waitFor(t, "the commit", func() bool { return h.k.Writes("commit") > 0 })
					cancel()
				}()
			}
			_, err = eng.Create(ctx, CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20})
			if calls.Load() != 1 || commitsThen.Load() != 0 {
				t.Errorf("point of no return reported %d times, with %d commit writes before it; want once, before commit", calls.Load(), commitsThen.Load())
			}
			if tt.cancelAtIt {
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("create = %v, want canceled", err)
				}
				if h.k.Writes("commit") != 0 {
					t.Fatal("a create cancelled at its point of no return wrote commit")
				}
				after, err := h.fs.Scan()
				if err != nil {
					t.Fatal(err)
				}
				requireSameTree(t, before, after)
				return
			}
			if err != nil && !tt.cancelAfter {
				t.Fatalf("create: %v", err)
			}
			// Cancelled after commit, the create may report that it did
			// not wait for the devices, but it keeps the region.
			regions := eng.Regions()
			if len(regions) != 1 || h.k.Writes("commit") != 1 || h.k.Writes("delete_region") != 0 {
				t.Fatalf("after the create (%v): regions %v, %d commit and %d delete_region writes; want the region kept",
					err, regions, h.k.Writes("commit"), h.k.Writes("delete_region"))
			}
		})
	}
}

// A delete's leader, cancelled before the delete's first write (unbind or
// delete_region) with no other request joined, stops it and leaves the
// region; a later delete of the generation starts afresh. Cancelled when
// another request has joined, the delete goes on for it. The point of no
// return is reported once, before the first write. Mutation: make
// deletePointOfNoReturn return nil at its top and "cancel at the point"
// deletes the region; drop the call.joined checks and "joined, then
// cancelled" fails the joiner.
func TestDeletePointOfNoReturn(t *testing.T) {
	for _, tt := range []string{"not cancelled", "cancelled while queued", "cancel at the point", "joined, then cancelled"} {
		t.Run(tt, func(t *testing.T) {
			h := newHarness(t)
			eng := h.start(nil)
			info, err := eng.Create(context.Background(), CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20})
			if err != nil {
				t.Fatal(err)
			}
			req := DeleteRequest{Name: info.Name, Generation: info.Generation}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var calls, writesThen atomic.Int32
			ctx = OnPointOfNoReturn(ctx, func() {
				calls.Add(1)
				writesThen.Store(int32(h.k.Writes("unbind") + h.k.Writes("delete_region")))
				if tt == "cancel at the point" {
					cancel()
				}
			})
			var joiner chan error
			if tt == "cancelled while queued" || tt == "joined, then cancelled" {
				_, held := h.holdWriter("decoder0.0")
				leader := make(chan error, 1)
				go func() { leader <- eng.Delete(ctx, req) }()
				waitFor(t, "the delete to be in flight", func() bool { return eng.joinedDeletes(req.Name, req.Generation) == 0 })
				if tt == "joined, then cancelled" {
					joiner = make(chan error, 1)
					go func() { joiner <- eng.Delete(context.Background(), req) }()
					waitFor(t, "the second request to join", func() bool { return eng.joinedDeletes(req.Name, req.Generation) == 1 })
				}
				cancel()
				if tt == "cancelled while queued" {
					err = <-leader // at once: the writer is still busy
				}
				held.Release()
				if tt == "joined, then cancelled" {
					err = <-leader
				}
			} else {
				err = eng.Delete(ctx, req)
			}
			stopped := tt == "cancelled while queued" || tt == "cancel at the point"
			wantCalls := int32(1)
			if tt == "cancelled while queued" {
				wantCalls = 0
			}
			if calls.Load() != wantCalls || writesThen.Load() != 0 {
				t.Errorf("point of no return reported %d times (want %d), with %d writes before it", calls.Load(), wantCalls, writesThen.Load())
			}
			if joiner != nil {
				if jerr := <-joiner; jerr != nil {
					t.Errorf("the joined request: %v", jerr)
				}
			}
			if !stopped {
				if err != nil {
					t.Fatalf("delete = %v", err)
				}
				if _, err := eng.Region(req.Name); !errors.Is(err, ErrNotFound) || h.k.Writes("delete_region") != 1 {
					t.Fatalf("after the delete: %v, %d delete_region writes", err, h.k.Writes("delete_region"))
				}
				return
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("delete = %v, want canceled", err)
			}
			if n := h.k.Writes("unbind") + h.k.Writes("delete_region"); n != 0 {
				t.Fatalf("a delete stopped before its first write wrote %d times", n)
			}
			if r, err := eng.Region(req.Name); err != nil || r.State == StateDeleting {
				t.Fatalf("the region after a stopped delete: %+v, %v", r, err)
			}
			if err := eng.Delete(context.Background(), req); err != nil {
				t.Fatalf("a delete after the stopped one: %v", err)
			}
			h.requireClean()
		})
	}
}
