package cxlsim

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// TestFixedProfile runs the three delete races on the unpatched 6.12
// profile (the baseline: each prints WARNING or BUG) and on ProfileFixed,
// where the same writes print nothing: the loser of two deletes gets
// ENODEV, a delete during auto-assembly waits for it and then deletes, a
// delete racing cxl_acpi's teardown gets ENODEV.
//
// Mutation: make fixedDelete return false and every "6.12-fixed" row
// fails with the unpatched kernel's WARNING or BUG.
func TestFixedProfile(t *testing.T) {
	for _, profile := range []string{Profile612, ProfileFixed} {
		fixed := profile == ProfileFixed
		t.Run(profile+"/double delete", func(t *testing.T) {
			k := newQEMU(t, profile, WithDeleteDelay(time.Millisecond), WithRegisterDelay(time.Millisecond))
			fs := sysfs.New(k)
			enodev := 0
			for range 30 {
				name := makeRegion(t, k, fs, "committed")
				var errs [2]error
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range errs {
					wg.Go(func() { <-start; errs[i] = fs.Write(deletePath, name) })
				}
				close(start)
				wg.Wait()
				for _, err := range errs {
					switch {
					case err == nil:
					case errors.Is(err, unix.ENODEV):
						enodev++
					default:
						t.Fatalf("delete: %v", err)
					}
				}
				if err := fs.Write(dev+"decoder2.0/dpa_size", "0"); err != nil {
					t.Fatal(err)
				}
			}
			warn, bug := k.Counts()
			if fixed && (warn != 0 || bug != 0 || enodev != 30) {
				t.Fatalf("fixed kernel: %d WARNING, %d BUG, %d ENODEV losers of 30; want 0, 0, 30", warn, bug, enodev)
			}
			if !fixed && warn == 0 {
				t.Fatal("unpatched kernel: 30 overlapping delete pairs and no WARNING")
			}
		})
		t.Run(profile+"/delete during assembly", func(t *testing.T) {
			// The delete's 20 ms inside the kernel outlast the nd
			// registration (2 ms) that follows the assembly's bind: the
			// libnvdimm oops is not what this row is about.
			k := newQEMU(t, profile, WithDeleteDelay(20*time.Millisecond))
			fs := sysfs.New(k)
			spec := AssembleSpec{RootDecoder: "decoder0.0", Mode: "pmem", Targets: []string{"decoder2.0"}, Size: sz256M, Duration: 200 * time.Millisecond}
			name, _ := fs.ReadString(dev + "decoder0.0/create_pmem_region")
			done := make(chan error, 1)
			go func() { _, err := k.AutoAssemble(context.Background(), spec); done <- err }()
			waitFor(t, "construct_region", func() bool {
				k.mu.Lock()
				defer k.mu.Unlock()
				r := k.regions[name]
				return r != nil && r.action && r.Assembling
			})
			delErr := fs.Write(deletePath, name)
			asmErr := <-done
			warn, bug := k.Counts()
			if fixed {
				if delErr != nil || asmErr != nil || warn != 0 || bug != 0 {
					t.Fatalf("fixed kernel: delete %v, assembly %v, %d WARNING, %d BUG; want the delete to wait for the assembly", delErr, asmErr, warn, bug)
				}
				if _, err := fs.ReadString(dev + name + "/commit"); !errors.Is(err, unix.ENOENT) {
					t.Fatalf("region after the delete: %v", err)
				}
			} else if bug == 0 {
				t.Fatal("unpatched kernel: delete during assembly and no BUG")
			}
		})
		t.Run(profile+"/delete during cxl_acpi unbind", func(t *testing.T) {
			k := newQEMU(t, profile, WithDeleteDelay(50*time.Millisecond))
			fs := sysfs.New(k)
			name := makeRegion(t, k, fs, "bound")
			var wg sync.WaitGroup
			var delErr, unbindErr error
			wg.Go(func() { delErr = fs.Write(deletePath, name) })
			time.Sleep(10 * time.Millisecond)
			wg.Go(func() { unbindErr = fs.Write(sysfs.ACPIUnbindPath, acpiName) })
			wg.Wait()
			warn, bug := k.Counts()
			if unbindErr != nil || bug != 0 {
				t.Fatalf("unbind: %v, %d BUG", unbindErr, bug)
			}
			if fixed && (warn != 0 || !errors.Is(delErr, unix.ENODEV)) {
				t.Fatalf("fixed kernel: delete %v, %d WARNING; want ENODEV and 0", delErr, warn)
			}
			if !fixed && (warn != 1 || delErr != nil) {
				t.Fatalf("unpatched kernel: delete %v, %d WARNING; want success and 1", delErr, warn)
			}
		})
	}
}
