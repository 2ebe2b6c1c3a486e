package cxlsim

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

const (
	dev        = "bus/cxl/devices/"
	deletePath = dev + "decoder0.0/delete_region"
)

// makeRegion creates region on the QEMU machine through fs and brings it
// to state: "created", "uncommitted" (configured, all targets), "committed"
// or "bound" (bound and settled: nd region registered).
func makeRegion(t testing.TB, k *Kernel, fs *sysfs.FS, state string) string {
	t.Helper()
	name, err := fs.ReadString(dev + "decoder0.0/create_pmem_region")
	if err != nil {
		t.Fatal(err)
	}
	steps := [][2]string{{dev + "decoder0.0/create_pmem_region", name}}
	if state != "created" {
		steps = append(steps, [][2]string{
			{dev + name + "/uuid", "6f1b2a52-9d5e-4c3a-8f07-2b1c0e4d5a61"},
			{dev + name + "/interleave_granularity", "256"},
			{dev + name + "/interleave_ways", "1"},
			{dev + name + "/size", "0x10000000"},
			{dev + "decoder2.0/mode", "pmem"},
			{dev + "decoder2.0/dpa_size", "0x10000000"},
			{dev + name + "/target0", "decoder2.0"},
		}...)
	}
	if state == "committed" || state == "bound" {
		steps = append(steps, [2]string{dev + name + "/commit", "1"})
	}
	if state == "bound" {
		steps = append(steps, [2]string{sysfs.RegionBindPath, name})
	}
	for _, s := range steps {
		if err := fs.Write(s[0], s[1]); err != nil {
			t.Fatal(err)
		}
	}
	if state == "bound" {
		waitRegistered(t, k, name)
	}
	return name
}

// TestDeleteRaceUnserialized: two writers deleting the same region at the
// same moment, 200 cycles in each state, as the real-kernel lab ran them.
// The unpatched kernel lets both find the region; the second
// devm_release_action finds no devres entry and WARNs, and both writes
// succeed. The same writers behind a mutex never WARN: the loser gets
// ENODEV.
//
// This test fails if the model's race window is removed: with
// WithDeleteDelay(0), or with a delete_region_store that re-checks the
// region after its delay and answers ENODEV, the unserialized runs record
// no WARNING and "want WARNINGs" fails.
func TestDeleteRaceUnserialized(t *testing.T) {
	cycles := 200
	if testing.Short() {
		cycles = 50
	}
	for _, state := range []string{"uncommitted", "committed", "bound"} {
		for _, serialized := range []bool{false, true} {
			mode := "raw"
			if serialized {
				mode = "mutex"
			}
			t.Run(state+"/"+mode, func(t *testing.T) {
				k := newQEMU(t, Profile612, WithDeleteDelay(time.Millisecond), WithRegisterDelay(time.Millisecond))
				fs := sysfs.New(k)
				var mu sync.Mutex
				okok := 0
				for range cycles {
					name := makeRegion(t, k, fs, state)
					var errs [2]error
					var wg sync.WaitGroup
					start := make(chan struct{})
					for i := range errs {
						wg.Add(1)
						go func() {
							defer wg.Done()
							<-start
							if serialized {
								mu.Lock()
								defer mu.Unlock()
							}
							errs[i] = fs.Write(deletePath, name)
						}()
					}
					close(start)
					wg.Wait()
					switch {
					case errs[0] == nil && errs[1] == nil:
						okok++
					case errs[0] == nil && errors.Is(errs[1], unix.ENODEV), errs[1] == nil && errors.Is(errs[0], unix.ENODEV):
					default:
						t.Fatalf("delete pair: %v, %v", errs[0], errs[1])
					}
					// Delete leaves the DPA allocated; free it for the next cycle.
					if state != "created" {
						if err := fs.Write(dev+"decoder2.0/dpa_size", "0"); err != nil {
							t.Fatal(err)
						}
					}
				}
				warn, bug := k.Counts()
				if bug != 0 {
					t.Errorf("BUG count %d, want 0 (every delete came after the region settled)", bug)
				}
				if warn != okok {
					t.Errorf("WARNINGs %d, OK+OK pairs %d: the captures have one WARNING per pair", warn, okok)
				}
				if serialized && warn != 0 {
					t.Errorf("serialized writers: %d WARNINGs, want 0", warn)
				}
				if !serialized && warn == 0 {
					t.Errorf("unserialized writers over %d cycles: want WARNINGs, got none", cycles)
				}
				if got := countLines(k, "WARNING: CPU: ", "at drivers/base/devres.c:", "devm_release_action+"); got != warn {
					t.Errorf("log has %d devres WARNING lines, Counts says %d", got, warn)
				}
				if !serialized && countLines(k, " delete_region_store+") != warn {
					t.Errorf("every WARNING trace names delete_region_store")
				}
				t.Logf("%s/%s: %d cycles, %d WARNINGs", state, mode, cycles, warn)
			})
		}
	}
}

func countLines(k *Kernel, subs ...string) int {
	n := 0
next:
	for _, l := range k.Log() {
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		n++
	}
	return n
}

// TestDeleteRightAfterBindOopses: a bound pmem region deleted before
// libnvdimm registered its nd region oopses the kernel, even with a single
// (serialized) writer; after the registration it does not.
func TestDeleteRightAfterBindOopses(t *testing.T) {
	k := newQEMU(t, Profile612, WithRegisterDelay(time.Hour))
	fs := sysfs.New(k)
	name := makeRegion(t, k, fs, "committed")
	if err := fs.Write(sysfs.RegionBindPath, name); err != nil {
		t.Fatal(err)
	}
	err := fs.Write(deletePath, name)
	if !errors.Is(err, ErrKernelOops) || !errors.Is(err, unix.EFAULT) {
		t.Fatalf("delete inside the nd registration window: %v, want ErrKernelOops", err)
	}
	if _, bug := k.Counts(); bug != 1 {
		t.Fatalf("BUG count %d, want 1", bug)
	}
	for _, want := range []string{"BUG: kernel NULL pointer dereference", "RIP: 0010:kill_device", " nd_device_unregister+", " unregister_region+", " delete_region_store+"} {
		if countLines(k, want) == 0 {
			t.Errorf("oops report lacks %q", want)
		}
	}
	// The same delete after the nd region registered is clean.
	k2 := newQEMU(t, Profile612, WithRegisterDelay(time.Millisecond))
	fs2 := sysfs.New(k2)
	name = makeRegion(t, k2, fs2, "bound")
	if err := fs2.Write(deletePath, name); err != nil {
		t.Fatal(err)
	}
	if warn, bug := k2.Counts(); warn != 0 || bug != 0 {
		t.Fatalf("settled delete: %d WARNINGs %d BUGs", warn, bug)
	}
}

// TestDeleteDuringACPIUnbindWarns is race 2: a delete that found the
// region before cxl_acpi's devres_release_all took the region's entry
// WARNs in devm_release_action (and succeeds).
func TestDeleteDuringACPIUnbindWarns(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		deleteDelay, tearing time.Duration
		deleteFirst          bool
	}{
		// The delete sleeps inside the kernel while the unbind runs to the end.
		{name: "unbind completes inside the delete", deleteDelay: 50 * time.Millisecond, deleteFirst: true},
		// The unbind sleeps in its teardown while the delete runs.
		{name: "delete inside the teardown", deleteDelay: time.Millisecond, tearing: 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newQEMU(t, Profile612, WithDeleteDelay(tc.deleteDelay), WithTeardownDelay(tc.tearing))
			fs := sysfs.New(k)
			name := makeRegion(t, k, fs, "bound")
			var wg sync.WaitGroup
			var delErr, unbindErr error
			run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
			del := func() { delErr = fs.Write(deletePath, name) }
			unbind := func() { unbindErr = fs.Write(sysfs.ACPIUnbindPath, acpiName) }
			if tc.deleteFirst {
				run(del)
				time.Sleep(tc.deleteDelay / 5)
				run(unbind)
			} else {
				run(unbind)
				time.Sleep(tc.tearing / 5)
				run(del)
			}
			wg.Wait()
			if delErr != nil || unbindErr != nil {
				t.Fatalf("delete: %v, unbind: %v; both succeed on the kernel", delErr, unbindErr)
			}
			if warn, _ := k.Counts(); warn != 1 {
				t.Fatalf("WARNINGs %d, want 1", warn)
			}
			if _, err := fs.ReadString(dev + "root0/devtype"); !errors.Is(err, unix.ENOENT) {
				t.Fatalf("root0 after the unbind: %v", err)
			}
		})
	}
}

// TestDeleteDuringAssembly is race 3: deleting a region the kernel is
// still assembling. Before the remove action is registered the delete
// WARNs; after it, unregistering frees the region under
// __construct_region: KASAN use-after-free.
func TestDeleteDuringAssembly(t *testing.T) {
	spec := AssembleSpec{RootDecoder: "decoder0.0", Mode: "pmem", Targets: []string{"decoder2.0"}, Size: sz256M, Duration: 400 * time.Millisecond}

	t.Run("after the remove action is registered", func(t *testing.T) {
		k := newQEMU(t, Profile612)
		fs := sysfs.New(k)
		stale, _ := fs.ReadString(dev + "decoder0.0/create_pmem_region")
		done := make(chan error, 1)
		go func() { _, err := k.AutoAssemble(context.Background(), spec); done <- err }()
		waitFor(t, "construct_region", func() bool {
			k.mu.Lock()
			defer k.mu.Unlock()
			r := k.regions[stale]
			return r != nil && r.action && r.Assembling
		})
		// The name read before the assembly took it is stale now.
		if err := fs.Write(dev+"decoder0.0/create_pmem_region", stale); !errors.Is(err, unix.EBUSY) {
			t.Fatalf("create with the name auto-assembly took: %v, want EBUSY", err)
		}
		if err := fs.Write(deletePath, stale); err != nil {
			t.Fatalf("delete during assembly: %v (the kernel returns success)", err)
		}
		if err := <-done; !errors.Is(err, ErrAssemblyAborted) {
			t.Fatalf("AutoAssemble: %v, want ErrAssemblyAborted", err)
		}
		if warn, bug := k.Counts(); bug != 1 || warn != 0 {
			t.Fatalf("WARN %d BUG %d, want 0 and 1", warn, bug)
		}
		if countLines(k, "BUG: KASAN: slab-use-after-free in __construct_region") != 1 {
			t.Fatal("no KASAN report")
		}
	})

	t.Run("before the remove action is registered", func(t *testing.T) {
		k := newQEMU(t, Profile612)
		fs := sysfs.New(k)
		name, _ := fs.ReadString(dev + "decoder0.0/create_pmem_region")
		sub := k.Subscribe(16)
		defer sub.Close()
		done := make(chan error, 1)
		go func() { _, err := k.AutoAssemble(context.Background(), spec); done <- err }()
		e, err := sub.Receive(context.Background())
		if err != nil || e.Name() != name || e.Action != "add" {
			t.Fatalf("first event %+v %v, want add of %s", e, err, name)
		}
		if err := fs.Write(deletePath, name); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("AutoAssemble: %v", err)
		}
		if warn, bug := k.Counts(); warn != 1 || bug != 0 {
			t.Fatalf("WARN %d BUG %d, want 1 and 0", warn, bug)
		}
		if got, _ := fs.ReadString(dev + name + "/commit"); got != "1" {
			t.Fatalf("the region survives the failed delete and assembles: commit=%q", got)
		}
	})
}
