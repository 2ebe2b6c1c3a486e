package sysfs_test

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
	"github.com/cxlregion/cxlregiond/internal/sysfs/sysfstest"
)

// TestWriteKeepsErrno checks that a failed write on the Dir backend keeps
// the system call's errno through *WriteError.
func TestWriteKeepsErrno(t *testing.T) {
	fsys := sysfstest.Materialize(t, capturePath("6.12", "5-bound"))
	tests := []struct {
		name, attr string
		want       unix.Errno
	}{
		{"directory", "bus/cxl/devices/region0", unix.EISDIR},
		{"missing attribute", "bus/cxl/devices/region0/nonexistent", unix.ENOENT},
		{"missing device", "bus/cxl/devices/region7/commit", unix.ENOENT},
		{"through a file", "bus/cxl/devices/region0/size/x", unix.ENOTDIR},
		{"leaves the tree", "../etc/passwd", unix.EINVAL},
	}
	for _, tt := range tests {
		err := fsys.Write(tt.attr, "1")
		var we *sysfs.WriteError
		if !errors.As(err, &we) || !errors.Is(err, tt.want) || we.Errno() != tt.want || we.Attr != tt.attr || we.Value != "1" {
			t.Errorf("%s: Write(%s) = %v; want *WriteError with %v", tt.name, tt.attr, err, tt.want)
		}
	}
}

// TestWriteReadOnly: without CAP_DAC_OVERRIDE a 0444 attribute refuses the
// write with EACCES, as sysfs does for everyone.
func TestWriteReadOnly(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes 0444 files on an ordinary file system")
	}
	fsys := sysfstest.Materialize(t, capturePath("6.12", "5-bound"))
	err := fsys.Write("bus/cxl/devices/region0/resource", "0")
	if !errors.Is(err, unix.EACCES) {
		t.Fatalf("Write to 0444 attribute: %v; want EACCES", err)
	}
}

// TestWriteFixtureFiles checks that the files writers use exist on a
// fixture and receive what was written (value plus newline).
func TestWriteFixtureFiles(t *testing.T) {
	fsys := sysfstest.Materialize(t, capturePath("6.1", "5-bound"))
	del, err := sysfs.DeviceAttr("decoder0.0", "delete_region")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{del, sysfs.RegionBindPath, sysfs.RegionUnbindPath, sysfs.ACPIBindPath,
		sysfs.ACPIUnbindPath, sysfs.PortUnbindPath} {
		if err := fsys.Write(p, "region0"); err != nil {
			t.Errorf("Write(%s): %v", p, err)
			continue
		}
		got, err := fsys.Backend().ReadFile(p)
		if err != nil || string(got) != "region0\n" {
			t.Errorf("%s holds %q, %v; want %q", p, got, err, "region0\n")
		}
	}
}
