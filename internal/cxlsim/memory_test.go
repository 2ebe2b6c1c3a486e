package cxlsim

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// systemRAM boots the default machine on profile, assembles a 1 GiB ram
// region on decoder0.3 and gives its dax device to the page allocator as
// daxctl does (auto-online switched off first, as the lab had to on 6.12).
func systemRAM(t *testing.T, profile string) (*Kernel, *sysfs.FS, string) {
	t.Helper()
	k, err := New(WithProfile(profile), WithRegisterDelay(time.Millisecond), WithAssembleDuration(5*time.Millisecond), WithDeleteDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	name, err := k.AutoAssemble(context.Background(), AssembleSpec{
		RootDecoder: "decoder0.3", Mode: "ram", Targets: []string{"decoder3.0", "decoder7.0"}, Size: 1 << 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, k, name)
	fs := sysfs.New(k)
	wantAuto := map[string]string{Profile61: "offline", Profile612: "online"}[profile]
	if got, _ := fs.ReadString(sysfs.AutoOnlineBlocksPath); got != wantAuto {
		t.Fatalf("auto_online_blocks %q, want %q", got, wantAuto)
	}
	if profile == Profile612 {
		if err := k.ReconfigureSystemRAM("dax3.0"); !errors.Is(err, unix.EBUSY) {
			t.Fatalf("daxctl with auto-online on: %v, want EBUSY", err)
		}
		if err := fs.Write(sysfs.AutoOnlineBlocksPath, "offline"); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.ReconfigureSystemRAM("dax3.0"); err != nil {
		t.Fatal(err)
	}
	return k, fs, name
}

func readMemory(t *testing.T, fs *sysfs.FS, name string) sysfs.RegionMemory {
	t.Helper()
	r, err := fs.ReadRegion(name)
	if err != nil {
		t.Fatal(err)
	}
	return r.Memory
}

// TestSystemRAMTeardown: what the unpatched kernels did in the lab with a
// region's memory online (docs/kernel.md#system-ram): every teardown
// write succeeds with no WARNING; unbind leaks the range; delete leaves
// the blocks online over a range nothing decodes (CORRUPTION); offlining
// first is clean.
func TestSystemRAMTeardown(t *testing.T) {
	for _, profile := range []string{Profile61, Profile612} {
		for _, tc := range []struct {
			name             string
			offlineFirst     bool
			writes           []string // path, value pairs after the setup
			leak, corruption int
			blocksLeft       int
		}{
			{"delete_region", false, []string{"bus/cxl/devices/decoder0.3/delete_region", "region3"}, 1, 1, 8},
			{"unbind", false, []string{sysfs.RegionUnbindPath, "region3"}, 1, 0, 8},
			{"unbind then commit 0", false, []string{sysfs.RegionUnbindPath, "region3", "bus/cxl/devices/region3/commit", "0"}, 1, 1, 8},
			{"offline, then delete_region", true, []string{"bus/cxl/devices/decoder0.3/delete_region", "region3"}, 0, 0, 0},
		} {
			t.Run(profile+"/"+tc.name, func(t *testing.T) {
				k, fs, name := systemRAM(t, profile)
				m := readMemory(t, fs, name)
				if len(m.Dax) != 1 || !m.Dax[0].SystemRAM() || m.Dax[0].TargetNode != 4 || len(m.OnlineBlocks()) != 8 || m.OnlineBytes() != 1<<30 {
					t.Fatalf("after daxctl: %+v", m)
				}
				for _, b := range m.Blocks {
					if !b.Movable() || b.Node != 4 {
						t.Fatalf("block %+v: want Movable on node 4", b)
					}
				}
				if tc.offlineFirst {
					for _, b := range m.Blocks {
						p, _ := sysfs.MemoryBlockStatePath(b.Name)
						if err := fs.Write(p, "offline"); err != nil {
							t.Fatal(err)
						}
					}
				}
				for i := 0; i < len(tc.writes); i += 2 {
					if err := fs.Write(tc.writes[i], tc.writes[i+1]); err != nil {
						t.Fatalf("%s: %v (the kernel lets it succeed)", tc.writes[i], err)
					}
				}
				if warn, bug := k.Counts(); warn != 0 || bug != 0 {
					t.Errorf("%d WARNING %d BUG, want none (the lab saw none)", warn, bug)
				}
				leak, corruption := k.MemoryFindings()
				if leak != tc.leak || corruption != tc.corruption {
					t.Errorf("LEAK %d CORRUPTION %d, want %d %d", leak, corruption, tc.leak, tc.corruption)
				}
				log := strings.Join(k.Log(), "\n")
				if got := strings.Count(log, "CORRUPTION:"); got != tc.corruption {
					t.Errorf("log has %d CORRUPTION lines, want %d", got, tc.corruption)
				}
				if tc.leak > 0 && !strings.Contains(log, "cannot be hotremoved until the next reboot") {
					t.Error("no kmem hot-remove line in the log")
				}
				names, _ := k.ReadDir("devices/system/memory")
				blocks := 0
				for _, n := range names {
					if sysfs.ValidMemoryBlockName(n) {
						blocks++
					}
				}
				if blocks != tc.blocksLeft {
					t.Errorf("%d memory blocks left, want %d", blocks, tc.blocksLeft)
				}
			})
		}
	}
}

// TestLeakedRangeIsSkipped: after a delete with memory online the range
// stays claimed, and the next region lands above the hole.
func TestLeakedRangeIsSkipped(t *testing.T) {
	k, fs, name := systemRAM(t, Profile61)
	before := readRegionRes(t, fs, name)
	if err := fs.Write("bus/cxl/devices/decoder0.3/delete_region", name); err != nil {
		t.Fatal(err)
	}
	for _, ed := range []string{"decoder3.0", "decoder7.0"} {
		if err := fs.Write("bus/cxl/devices/"+ed+"/dpa_size", "0"); err != nil {
			t.Fatal(err)
		}
	}
	next, err := k.AutoAssemble(context.Background(), AssembleSpec{
		RootDecoder: "decoder0.3", Mode: "ram", Targets: []string{"decoder3.0", "decoder7.0"}, Size: 1 << 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	if after := readRegionRes(t, fs, next); after < before+1<<30 {
		t.Fatalf("next region at %#x, inside the leaked range from %#x", after, before)
	}
}

func readRegionRes(t *testing.T, fs *sysfs.FS, name string) uint64 {
	t.Helper()
	r, err := fs.ReadRegion(name)
	if err != nil || r.Resource == nil {
		t.Fatalf("%s: %+v %v", name, r, err)
	}
	return *r.Resource
}

// TestOfflineFailures: EBUSY only for a ZONE_NORMAL block with unmovable
// pages; under memory pressure offline waits until its writer is
// signalled (EINTR). Either way the block stays online.
func TestOfflineFailures(t *testing.T) {
	k, fs, name := systemRAM(t, Profile612)
	blocks := readMemory(t, fs, name).Blocks
	p0, _ := sysfs.MemoryBlockStatePath(blocks[0].Name)
	if err := k.PinMemory(blocks[0].Name, true); err != nil {
		t.Fatal(err)
	}
	if err := fs.Write(p0, "offline"); err != nil {
		t.Fatalf("pinned Movable block: %v (pages in ZONE_MOVABLE migrate)", err)
	}
	if err := fs.Write(p0, "online_kernel"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Write(p0, "offline"); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("pinned Normal block: %v, want EBUSY", err)
	}
	if m := readMemory(t, fs, name); !m.Blocks[0].Online() || m.Blocks[0].ValidZones != "Normal" {
		t.Fatalf("after EBUSY: %+v", m.Blocks[0])
	}
	if !strings.Contains(strings.Join(k.Log(), "\n"), "unmovable page") {
		t.Error("no page dump in the log")
	}

	k.StallOffline(true)
	p1, _ := sysfs.MemoryBlockStatePath(blocks[1].Name)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := k.WriteFileContext(ctx, p1, []byte("offline")); !errors.Is(err, unix.EINTR) {
		t.Fatalf("stalled offline, writer signalled: %v, want EINTR", err)
	}
	if m := readMemory(t, fs, name); !m.Blocks[1].Online() {
		t.Fatalf("after EINTR: %+v", m.Blocks[1])
	}
	done := make(chan error, 1)
	go func() { done <- k.WriteFileContext(context.Background(), p1, []byte("offline")) }()
	time.Sleep(10 * time.Millisecond)
	k.StallOffline(false)
	if err := <-done; err != nil {
		t.Fatalf("offline after the pressure went: %v", err)
	}
}
