package devname_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/guard"
	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/region"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// secondSpellings are names of real devices spelled as the kernel never
// spells them. Each would give one device a second name: a second lock
// file (a second writer for one root decoder), a second object path, a
// second key in the engine's maps.
var secondSpellings = struct{ regions, decoders []string }{
	regions:  []string{"region01", "region00", "region2147483648"},
	decoders: []string{"decoder00.0", "decoder0.00", "decoder01.1", "decoder2147483648.0"},
}

// Every package that takes a device name refuses the second spellings, and
// refusing changes nothing: no lock file, no guard mark, nothing in sysfs.
// Two more take names and check them in their own tests: cmd/cxlregionctl's
// arguments (TestUsageErrorsExitInvalidArgument; a main package cannot be
// imported) and internal/service's D-Bus arguments
// (TestInvalidArgumentsNeverReachTheEngine, on a private bus).
//
// Mutation: let ParseID accept a leading zero, or give any of these
// packages its own, looser rule again (lock's old `decoder[0-9]+\.[0-9]+`)
// → the rows of that package go red.
func TestEveryConsumerRefusesSecondSpellings(t *testing.T) {
	sysRoot := t.TempDir()
	lockDir := t.TempDir()
	fs := sysfs.Open(sysRoot)
	reg, err := lock.NewRegistry(fs, lockDir)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := region.New(region.Config{FS: fs, Writers: reg, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	writers := guard.LockWriters(reg)

	for _, name := range secondSpellings.decoders {
		t.Run(name, func(t *testing.T) {
			if p, ok := api.RootDecoderPath(name); ok {
				t.Errorf("api.RootDecoderPath(%q) = %q", name, p)
			}
			elem := api.RootDecodersPath + "/" + dbus.ObjectPath(replaceDot(name))
			if n, ok := api.RootDecoderName(elem); ok {
				t.Errorf("api.RootDecoderName(%q) = %q", elem, n)
			}
			if p, err := sysfs.DeviceAttr(name, "delete_region"); err == nil {
				t.Errorf("sysfs.DeviceAttr(%q) = %q", name, p)
			}
			if _, err := fs.ReadRootDecoder(name); !errors.Is(err, unix.EINVAL) {
				t.Errorf("sysfs ReadRootDecoder(%q) = %v, want EINVAL", name, err)
			}
			if _, err := fs.ReadEndpointDecoder(name); !errors.Is(err, unix.EINVAL) {
				t.Errorf("sysfs ReadEndpointDecoder(%q) = %v, want EINVAL", name, err)
			}
			if _, err := fs.NextRegionName(name, "pmem"); !errors.Is(err, unix.EINVAL) {
				t.Errorf("sysfs NextRegionName(%q) = %v, want EINVAL", name, err)
			}
			if p, err := lock.LockPath(lockDir, name); err == nil {
				t.Errorf("lock.LockPath(%q) = %q", name, p)
			}
			if _, err := reg.Writer(name); err == nil {
				t.Errorf("lock Registry.Writer(%q) accepted", name)
			}
			if err := region.ValidateDecoderName(name); !errors.Is(err, region.ErrInvalid) {
				t.Errorf("region.ValidateDecoderName(%q) = %v", name, err)
			}
			if _, err := eng.Create(ctx, region.CreateRequest{RootDecoder: name, Type: "ram", Size: region.SizeAlign}); !errors.Is(err, region.ErrInvalid) {
				t.Errorf("region Engine.Create(root decoder %q) = %v, want ErrInvalid", name, err)
			}
			if _, err := eng.Create(ctx, region.CreateRequest{RootDecoder: "decoder0.0", Type: "ram", Size: region.SizeAlign, Targets: []string{name}}); !errors.Is(err, region.ErrInvalid) {
				t.Errorf("region Engine.Create(target %q) = %v, want ErrInvalid", name, err)
			}
			if p, err := writers.LockPath(name); err == nil {
				t.Errorf("guard LockWriters.LockPath(%q) = %q", name, p)
			}
			if release, err := writers.Acquire(ctx, name); err == nil {
				release()
				t.Errorf("guard LockWriters.Acquire(%q) accepted", name)
			}
			for _, tg := range guard.SysfsTargets("/sys")([]string{name}) {
				if tg.RootDecoder != "" {
					t.Errorf("guard.SysfsTargets(%q) marks %s", name, tg.Path)
				}
			}
		})
	}
	for _, name := range secondSpellings.regions {
		t.Run(name, func(t *testing.T) {
			if p, ok := api.RegionPath(name); ok {
				t.Errorf("api.RegionPath(%q) = %q", name, p)
			}
			if n, ok := api.RegionName(api.RegionsPath + "/" + dbus.ObjectPath(name)); ok {
				t.Errorf("api.RegionName(%q) = %q", name, n)
			}
			if p, err := sysfs.DeviceAttr(name, "size"); err == nil {
				t.Errorf("sysfs.DeviceAttr(%q) = %q", name, p)
			}
			if _, err := fs.ReadRegion(name); !errors.Is(err, unix.EINVAL) {
				t.Errorf("sysfs ReadRegion(%q) = %v, want EINVAL", name, err)
			}
			if err := region.ValidateRegionName(name); !errors.Is(err, region.ErrInvalid) {
				t.Errorf("region.ValidateRegionName(%q) = %v", name, err)
			}
			if err := eng.Delete(ctx, region.DeleteRequest{Name: name}); !errors.Is(err, region.ErrInvalid) {
				t.Errorf("region Engine.Delete(%q) = %v, want ErrInvalid", name, err)
			}
			if err := eng.Enable(ctx, name); !errors.Is(err, region.ErrInvalid) {
				t.Errorf("region Engine.Enable(%q) = %v, want ErrInvalid", name, err)
			}
			if err := eng.Disable(ctx, name); !errors.Is(err, region.ErrInvalid) {
				t.Errorf("region Engine.Disable(%q) = %v, want ErrInvalid", name, err)
			}
		})
	}

	for dir, what := range map[string]string{lockDir: "lock directory", sysRoot: "sysfs root"} {
		if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
			t.Errorf("%s after refusals: %v, %v; want it empty", what, names(ents), err)
		}
	}
}

// The same names spelled as the kernel spells them pass the same checks,
// so the refusals above are about the spelling, not the test's setup.
func TestEveryConsumerAcceptsKernelSpellings(t *testing.T) {
	lockDir := t.TempDir()
	fs := sysfs.Open(t.TempDir())
	reg, err := lock.NewRegistry(fs, lockDir)
	if err != nil {
		t.Fatal(err)
	}
	const dec, reg0 = "decoder0.0", "region1"
	if _, ok := api.RootDecoderPath(dec); !ok {
		t.Errorf("api.RootDecoderPath(%q) refused", dec)
	}
	if n, ok := api.RootDecoderName(api.RootDecodersPath + "/decoder0_0"); !ok || n != dec {
		t.Errorf("api.RootDecoderName(decoder0_0) = %q, %v", n, ok)
	}
	if _, ok := api.RegionPath(reg0); !ok {
		t.Errorf("api.RegionPath(%q) refused", reg0)
	}
	if _, err := sysfs.DeviceAttr(dec, "delete_region"); err != nil {
		t.Error(err)
	}
	if p, err := lock.LockPath(lockDir, dec); err != nil || p != filepath.Join(lockDir, dec+".lock") {
		t.Errorf("lock.LockPath(%q) = %q, %v", dec, p, err)
	}
	if _, err := reg.Writer(dec); err != nil {
		t.Error(err)
	}
	if err := region.ValidateDecoderName(dec); err != nil {
		t.Error(err)
	}
	if err := region.ValidateRegionName(reg0); err != nil {
		t.Error(err)
	}
	if _, err := guard.LockWriters(reg).LockPath(dec); err != nil {
		t.Error(err)
	}
	marked := 0
	for _, tg := range guard.SysfsTargets("/sys")([]string{dec}) {
		if tg.RootDecoder == dec {
			marked++
		}
	}
	if marked != 3 {
		t.Errorf("guard.SysfsTargets(%q) marks %d of its files, want 3", dec, marked)
	}
}

func replaceDot(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}

func names(ents []os.DirEntry) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
