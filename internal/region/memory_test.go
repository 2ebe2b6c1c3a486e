package region

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/cxlsim"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// systemRAMRegion creates a 512 MiB ram region on decoder0.2 (6.12) through
// the engine, gives it to the page allocator as daxctl does, and waits
// until the engine's model shows its four blocks online (from uevents).
func systemRAMRegion(t *testing.T, h *harness, eng *Engine) RegionInfo {
	t.Helper()
	info, err := eng.Create(context.Background(), CreateRequest{RootDecoder: "decoder0.2", Type: "ram", Size: 512 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var dax string
	waitFor(t, "dax device", func() bool {
		r, err := h.fs.ReadRegion(info.Name)
		if err == nil && len(r.Memory.Dax) == 1 {
			dax = r.Memory.Dax[0].Name
		}
		return dax != ""
	})
	if err := h.fs.Write(sysfs.AutoOnlineBlocksPath, "offline"); err != nil {
		t.Fatal(err)
	}
	if err := h.k.ReconfigureSystemRAM(dax); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the engine to see the memory online", func() bool {
		r, err := eng.Region(info.Name)
		return err == nil && len(r.Memory.OnlineBlocks()) == 4
	})
	info, _ = eng.Region(info.Name)
	return info
}

// teardownWrites counts the writes that tear a region down.
func teardownWrites(k *cxlsim.Kernel, name string) int {
	return k.Writes("cxl_region/unbind", name) + k.Writes("delete_region", name) + k.Writes(name+"/commit", "0")
}

// TestTeardownRefusedWhileMemoryOnline: every teardown path refuses a
// region whose memory is online before any write, with a Busy error that
// says how much, where, and what to do; the kernel is not touched (no
// LEAK, no CORRUPTION finding).
//
// Mutation: make memoryGate return nil at its top and every case fails
// (the simulated kernel counts a LEAK and, for delete, a CORRUPTION).
func TestTeardownRefusedWhileMemoryOnline(t *testing.T) {
	ctx := context.Background()
	for _, path := range []string{"delete", "disable", "delete of another generation's name", "recover"} {
		t.Run(path, func(t *testing.T) {
			h := newHarness(t, cxlsim.WithProfile(cxlsim.Profile612))
			var eng *Engine
			if path == "recover" {
				// A delete journalled, then the daemon died; memory went
				// online before it came back.
				eng = h.start(func(c *Config) { c.crashAt = func(p crashPoint) bool { return p == crashDeleteJournaled } })
			} else {
				eng = h.start(nil)
			}
			info := systemRAMRegion(t, h, eng)
			before := teardownWrites(h.k, info.Name)
			var err error
			switch path {
			case "delete":
				err = eng.Delete(ctx, DeleteRequest{Name: info.Name})
			case "delete of another generation's name":
				err = eng.Delete(ctx, DeleteRequest{Name: info.Name, Generation: info.Generation})
			case "disable":
				err = eng.Disable(ctx, info.Name)
			case "recover":
				// The crash hook fires only after the gate: offline is off,
				// so it must refuse before the journal point is reached.
				err = eng.Delete(ctx, DeleteRequest{Name: info.Name})
				if isErr(err, errCrashed) {
					t.Fatal("the delete reached its journal point with memory online")
				}
				h.shutdown()
				eng = h.start(nil)
				if _, rerr := eng.Region(info.Name); rerr != nil {
					t.Fatalf("region gone after restart: %v", rerr)
				}
			}
			var mo *MemoryOnlineError
			if !errors.Is(err, ErrBusy) || !errors.As(err, &mo) {
				t.Fatalf("%s: %v, want a MemoryOnlineError (Busy)", path, err)
			}
			if mo.Bytes != 512<<20 || len(mo.Blocks) != 4 || len(mo.Nodes) != 1 || mo.Nodes[0] != 3 {
				t.Errorf("error details %+v, want 512 MiB in 4 blocks on node 3", mo)
			}
			for _, want := range []string{"512 MiB", "node 3", "--offline " + info.Name, mo.Blocks[0]} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q lacks %q", err, want)
				}
			}
			if n := teardownWrites(h.k, info.Name) - before; n != 0 {
				t.Errorf("%d teardown writes reached the kernel", n)
			}
			if leak, corruption := h.k.MemoryFindings(); leak != 0 || corruption != 0 {
				t.Errorf("kernel findings: LEAK %d CORRUPTION %d", leak, corruption)
			}
			if r, err := eng.Region(info.Name); err != nil || len(r.Memory.OnlineBlocks()) != 4 {
				t.Errorf("region after the refusal: %+v %v", r, err)
			}
			h.requireClean()
		})
	}
}

// TestOfflineThenTeardown: with the offline option the blocks go offline
// under the writer (progress to 1), then the region is disabled or
// deleted: no finding, no WARNING, the blocks are gone with it.
func TestOfflineThenTeardown(t *testing.T) {
	for _, op := range []string{"delete", "disable"} {
		t.Run(op, func(t *testing.T) {
			h := newHarness(t, cxlsim.WithProfile(cxlsim.Profile612))
			eng := h.start(nil)
			info := systemRAMRegion(t, h, eng)
			var progress []float64
			mem := MemoryOptions{Offline: true, Progress: func(f float64) { progress = append(progress, f) }}
			var err error
			if op == "delete" {
				err = eng.Delete(context.Background(), DeleteRequest{Name: info.Name, Memory: mem})
			} else {
				err = eng.DisableWith(context.Background(), info.Name, mem)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(progress) != 4 || progress[3] != 1 {
				t.Errorf("progress %v, want 4 steps to 1", progress)
			}
			if leak, corruption := h.k.MemoryFindings(); leak != 0 || corruption != 0 {
				t.Errorf("kernel findings: LEAK %d CORRUPTION %d", leak, corruption)
			}
			names, _ := h.k.ReadDir("devices/system/memory")
			for _, n := range names {
				if sysfs.ValidMemoryBlockName(n) {
					t.Errorf("block %s left after the %s", n, op)
				}
			}
			h.requireClean()
		})
	}
}

// TestOfflineFailureRestores: a block that cannot be offlined (EBUSY:
// unmovable pages in ZONE_NORMAL; or a stall ended by the timeout, EINTR)
// puts the blocks offlined before it back online, leaves the region as it
// was, and the error names the block and the errno.
//
// Mutation: drop the restoreBlocks call in offlineBlocks and both cases
// find blocks left offline.
func TestOfflineFailureRestores(t *testing.T) {
	for _, tc := range []string{"EBUSY", "timeout"} {
		t.Run(tc, func(t *testing.T) {
			h := newHarness(t, cxlsim.WithProfile(cxlsim.Profile612))
			eng := h.start(nil)
			info := systemRAMRegion(t, h, eng)
			third := info.Memory.Blocks[2].Name
			ctx := context.Background()
			switch tc {
			case "EBUSY":
				p, _ := sysfs.MemoryBlockStatePath(third)
				for _, v := range []string{"offline", "online_kernel"} {
					if err := h.fs.Write(p, v); err != nil {
						t.Fatal(err)
					}
				}
				if err := h.k.PinMemory(third, true); err != nil {
					t.Fatal(err)
				}
			case "timeout":
				// The first two blocks offline; the third loops until the
				// timeout signals it.
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
			}
			zones := map[string]string{}
			r0, _ := h.fs.ReadRegion(info.Name)
			for _, b := range r0.Memory.Blocks {
				zones[b.Name] = b.ValidZones
			}
			before := teardownWrites(h.k, info.Name)
			start := time.Now()
			mem := MemoryOptions{Offline: true, Progress: func(f float64) {
				if tc == "timeout" && f == 0.5 {
					h.k.StallOffline(true)
				}
			}}
			err := eng.Delete(ctx, DeleteRequest{Name: info.Name, Memory: mem})
			switch tc {
			case "EBUSY":
				var ke *KernelError
				if !errors.As(err, &ke) || ke.Errno != unix.EBUSY || !strings.Contains(err.Error(), third) || !strings.Contains(err.Error(), "unmovable") {
					t.Fatalf("delete: %v, want a KernelError EBUSY naming %s and the reason", err, third)
				}
			case "timeout":
				if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "EINTR") {
					t.Fatalf("delete: %v, want Timeout after EINTR", err)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("the timeout took %v to end the offline", d)
				}
			}
			r, err := h.fs.ReadRegion(info.Name)
			if err != nil {
				t.Fatalf("region gone: %v", err)
			}
			for _, b := range r.Memory.Blocks {
				if !b.Online() || b.ValidZones != zones[b.Name] {
					t.Errorf("block %s: %s %s, want online %s", b.Name, b.State, b.ValidZones, zones[b.Name])
				}
			}
			if n := teardownWrites(h.k, info.Name) - before; n != 0 {
				t.Errorf("%d teardown writes reached the kernel", n)
			}
			if leak, corruption := h.k.MemoryFindings(); leak != 0 || corruption != 0 {
				t.Errorf("kernel findings: LEAK %d CORRUPTION %d", leak, corruption)
			}
			h.requireClean()
		})
	}
}
