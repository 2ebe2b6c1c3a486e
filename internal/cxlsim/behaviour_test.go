package cxlsim

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// TestHypervisorCommit: 6.12 under a hypervisor refuses commit with ENXIO
// and a WARNING; 6.1 has no such check.
func TestHypervisorCommit(t *testing.T) {
	for _, tc := range []struct {
		profile  string
		want     error
		wantWarn int
	}{
		{Profile612, unix.ENXIO, 1},
		{Profile61, nil, 0},
	} {
		k := newQEMU(t, tc.profile, WithHypervisor(true))
		fs := sysfs.New(k)
		name := makeRegion(t, k, fs, "uncommitted")
		err := fs.Write(dev+name+"/commit", "1")
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: commit: %v, want %v", tc.profile, err, tc.want)
		}
		if warn, _ := k.Counts(); warn != tc.wantWarn {
			t.Errorf("%s: %d WARNINGs, want %d", tc.profile, warn, tc.wantWarn)
		}
		if tc.wantWarn > 0 && countLines(k, "WARNING: CPU:", "commit_store+") != 1 || tc.wantWarn > 0 && countLines(k, "Failed to synchronize CPU cache state") != 1 {
			t.Errorf("%s: WARNING block lacks the commit_store lines", tc.profile)
		}
	}
}

// TestFaultsAndWrites: injected errors fail writes before the store
// method; Writes counts every write received; the log has a line per
// write; the log writer gets the same lines.
func TestFaultsAndWrites(t *testing.T) {
	var out bytes.Buffer
	k := newQEMU(t, Profile612, WithLogWriter(&out))
	fs := sysfs.New(k)
	k.InjectFault("decoder0.*/create_pmem_region", unix.EIO, 1)
	if err := fs.Write(dev+"decoder0.0/create_pmem_region", "region0"); !errors.Is(err, unix.EIO) {
		t.Fatalf("injected fault: %v", err)
	}
	if err := fs.Write(dev+"decoder0.0/create_pmem_region", "region0"); err != nil {
		t.Fatalf("after the fault's count ran out: %v", err)
	}
	k.InjectFault("delete_region", unix.EINTR, -1)
	for range 3 {
		if err := fs.Write(deletePath, "region0"); !errors.Is(err, unix.EINTR) {
			t.Fatalf("permanent fault: %v", err)
		}
	}
	k.ClearFaults()
	k.InjectDelay("region0/uuid", 20*time.Millisecond)
	start := time.Now()
	if err := fs.Write(dev+"region0/uuid", "6f1b2a52-9d5e-4c3a-8f07-2b1c0e4d5a61"); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Errorf("injected delay not applied")
	}
	if err := fs.Write(deletePath, "region0"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Write(deletePath, "region0"); !errors.Is(err, unix.ENODEV) {
		t.Fatal(err)
	}
	if got := k.Writes("decoder0.0/delete_region"); got != 5 {
		t.Errorf("Writes(delete_region) = %d, want 5", got)
	}
	if got := k.Writes("decoder0.0/delete_region", "region0"); got != 5 {
		t.Errorf("Writes(delete_region, region0) = %d, want 5", got)
	}
	if got := k.Writes("decoder0.0/delete_region", "region1"); got != 0 {
		t.Errorf("Writes(delete_region, region1) = %d, want 0", got)
	}
	wantLines := []string{
		`cxlsim: write bus/cxl/devices/decoder0.0/create_pmem_region "region0" -> EIO`,
		`cxlsim: write bus/cxl/devices/decoder0.0/create_pmem_region "region0" -> ok`,
		`cxlsim: write bus/cxl/devices/decoder0.0/delete_region "region0" -> EINTR`,
		`cxlsim: write bus/cxl/devices/decoder0.0/delete_region "region0" -> ENODEV`,
	}
	for _, l := range wantLines {
		if countLines(k, l) == 0 || !strings.Contains(out.String(), l+"\n") {
			t.Errorf("log lacks %q", l)
		}
	}
}

// TestAutoAssembleCompletes: an undisturbed assembly yields a committed,
// bound region with the kernel's events, and consumes the cached id.
func TestAutoAssembleCompletes(t *testing.T) {
	k, err := New(WithRegisterDelay(time.Millisecond), WithAssembleDuration(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	sub := k.Subscribe(100)
	defer sub.Close()
	name, err := k.AutoAssemble(context.Background(), AssembleSpec{
		RootDecoder: "decoder0.3", Mode: "ram", Targets: []string{"decoder3.0", "decoder7.0"}, Size: 1 << 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	if name != "region3" {
		t.Fatalf("assembled %s, want region3 (decoder0.3's cached id)", name)
	}
	waitRegistered(t, k, name)
	fs := sysfs.New(k)
	r, err := fs.ReadRegion(name)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Committed || r.Driver != "cxl_region" || r.Type != "ram" || r.InterleaveWays != 2 || r.Targets[1] != "decoder7.0" || r.DaxRegion != "dax_region3" {
		t.Fatalf("assembled region: %+v", r)
	}
	var got []string
	for _, e := range drain(t, sub) {
		got = append(got, string(e.Action)+" "+e.Name())
	}
	want := []string{"add region3", "add dax_region3", "bind dax_region3", "bind region3", "add dax3.0", "bind dax3.0"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", got, want)
	}
	// Decoders already assigned: a second assembly on them is refused.
	if _, err := k.AutoAssemble(context.Background(), AssembleSpec{RootDecoder: "decoder0.3", Mode: "ram", Targets: []string{"decoder3.0", "decoder7.0"}, Size: 1 << 30}); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("second assembly on used decoders: %v", err)
	}
}

// TestACPIRebindAndPortUnbind: cxl_acpi bind brings the tree back (the
// endpoints after the rebind delay) without the regions; cxl_port unbind
// of a host bridge leaves its regions as zombies with no targets.
func TestACPIRebindAndPortUnbind(t *testing.T) {
	k, err := New(WithRegisterDelay(time.Millisecond), WithRebindDelay(5*time.Millisecond), WithDeleteDelay(0), WithTeardownDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	fs := sysfs.New(k)
	mk := func(root, typ, ed string) string {
		name, _ := fs.ReadString(dev + root + "/create_" + typ + "_region")
		for _, s := range [][2]string{{root + "/create_" + typ + "_region", name}, {name + "/interleave_granularity", "256"},
			{name + "/interleave_ways", "1"}, {name + "/size", "0x10000000"}, {ed + "/mode", typ}, {ed + "/dpa_size", "0x10000000"},
			{name + "/target0", ed}, {name + "/commit", "1"}} {
			if typ == "pmem" && strings.HasSuffix(s[0], "/size") {
				if err := fs.Write(dev+name+"/uuid", "2f1b2a52-9d5e-4c3a-8f07-2b1c0e4d5a61"); err != nil {
					t.Fatal(err)
				}
			}
			if err := fs.Write(dev+s[0], s[1]); err != nil {
				t.Fatalf("%s <- %s: %v", s[0], s[1], err)
			}
		}
		return name
	}
	r0 := mk("decoder0.0", "pmem", "decoder3.0")
	if err := fs.Write(sysfs.ACPIUnbindPath, acpiName); err != nil {
		t.Fatal(err)
	}
	if err := fs.Write(sysfs.ACPIUnbindPath, acpiName); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("second unbind: %v", err)
	}
	if names, _ := fs.Backend().ReadDir("bus/cxl/devices"); len(names) != 8 {
		t.Fatalf("after unbind: %v, want the 8 memdevs only (6.12 removes pmemN)", names)
	}
	if err := fs.Write(sysfs.ACPIBindPath, acpiName); err != nil {
		t.Fatal(err)
	}
	if err := fs.Write(sysfs.ACPIBindPath, acpiName); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("second bind: %v", err)
	}
	waitFor(t, "endpoints back", func() bool { _, err := fs.ReadString(dev + "decoder10.3/mode"); return err == nil })
	top, err := fs.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Regions) != 0 || len(top.Endpoints) != 8 || len(top.EndpointDecoders) != 32 {
		t.Fatalf("after rebind: %d regions %d endpoints %d decoders", len(top.Regions), len(top.Endpoints), len(top.EndpointDecoders))
	}
	if got, _ := fs.ReadString(dev + "decoder0.0/create_pmem_region"); got != "region0" {
		t.Fatalf("ids after rebind: %q", got)
	}
	if got, _ := fs.ReadString(dev + "decoder3.0/dpa_size"); got != "0x0000000000000000" {
		t.Fatalf("endpoint decoder after rebind: dpa_size %s", got)
	}
	_ = r0

	// cxl_port unbind of port2: its endpoints and decoders go, the ram
	// region on decoder0.2 stays with its target detached.
	r2 := mk("decoder0.2", "ram", "decoder7.0")
	if err := fs.Write(sysfs.RegionBindPath, r2); err != nil {
		t.Fatal(err)
	}
	if err := fs.Write(sysfs.PortUnbindPath, "port2"); err != nil {
		t.Fatal(err)
	}
	reg, err := fs.ReadRegion(r2)
	if err != nil {
		t.Fatal(err)
	}
	if reg.Committed || reg.Driver != "" || reg.Targets[0] != "" {
		t.Fatalf("zombie region after port unbind: %+v", reg)
	}
	if _, err := fs.ReadString(dev + "endpoint7/devtype"); err == nil {
		t.Fatal("endpoint7 still there")
	}
	if err := fs.Write(deletePath[:len(dev)]+"decoder0.2/delete_region", r2); err != nil {
		t.Fatal(err)
	}
	if warn, bug := k.Counts(); warn != 0 || bug != 0 {
		t.Fatalf("%d WARN %d BUG", warn, bug)
	}
}

// TestReadErrors: the errnos of reading what cannot be read.
func TestReadErrors(t *testing.T) {
	k := newQEMU(t, Profile612)
	for _, tc := range []struct {
		op, path string
		want     unix.Errno
	}{
		{"read", dev + "decoder0.0/delete_region", unix.EACCES},
		{"read", dev + "decoder0.0/nope", unix.ENOENT},
		{"read", dev + "decoder0.0", unix.EISDIR},
		{"read", dev + "region9/size", unix.ENOENT},
		{"write", dev + "decoder0.0/size", unix.EACCES},
		{"write", dev + "decoder0.0/nope", unix.ENOENT},
		{"write", dev + "decoder1.0/create_pmem_region", unix.ENOENT},
		{"readlink", dev + "decoder0.0/size", unix.EINVAL},
		{"readdir", dev + "decoder0.0/size", unix.ENOTDIR},
		{"write", "bus/cxl/drivers/cxl_region/unbind", unix.ENODEV},
		{"write", "bus/platform/drivers/cxl_acpi/unbind", unix.ENODEV},
	} {
		var err error
		switch tc.op {
		case "read":
			_, err = k.ReadFile(tc.path)
		case "write":
			err = k.WriteFile(tc.path, []byte("x\n"))
		case "readlink":
			_, err = k.ReadLink(tc.path)
		case "readdir":
			_, err = k.ReadDir(tc.path)
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s %s: %v, want %v", tc.op, tc.path, err, tc.want)
		}
	}
	// The devices/ form of a path reaches the same attribute.
	a, err1 := k.ReadFile(dev + "decoder0.0/size")
	b, err2 := k.ReadFile("devices/platform/ACPI0017:00/root0/decoder0.0/size")
	if err1 != nil || err2 != nil || string(a) != string(b) {
		t.Errorf("devices/ form: %q %v vs %q %v", b, err2, a, err1)
	}
}
