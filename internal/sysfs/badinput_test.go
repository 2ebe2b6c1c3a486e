package sysfs_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
	"github.com/cxlregion/cxlregiond/internal/sysfs/sysfstest"
)

// fixturePath returns the on-disk path of bus/cxl/devices/<p> in a fixture.
func fixturePath(t testing.TB, fsys *sysfs.FS, p string) string {
	t.Helper()
	dir, ok := fsys.Backend().(sysfs.Dir)
	if !ok {
		t.Fatalf("backend %T is not a sysfs.Dir", fsys.Backend())
	}
	return filepath.Join(string(dir), "bus", "cxl", "devices", filepath.FromSlash(p))
}

// corrupt replaces the content of an attribute of a fixture, creating it
// if the capture has none (region0/locked, a v7.1 attribute), and puts
// the original back when the test ends, so subtests can share one tree.
func corrupt(t testing.TB, fsys *sysfs.FS, p, value string) {
	t.Helper()
	name := fixturePath(t, fsys, p)
	orig, err := os.ReadFile(name)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var mode fs.FileMode
	if existed {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		mode = st.Mode().Perm()
		if err := os.Chmod(name, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(name, []byte(value), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !existed {
			if err := os.Remove(name); err != nil {
				t.Error(err)
			}
			return
		}
		if err := os.WriteFile(name, orig, 0o644); err != nil {
			t.Error(err)
		}
		if err := os.Chmod(name, mode); err != nil {
			t.Error(err)
		}
	})
}

// TestScanMalformed checks that a value the kernel would never print fails
// Scan (and the single reader) with a *ParseError naming file and value,
// and never panics or decodes garbage.
func TestScanMalformed(t *testing.T) {
	tests := []struct {
		attr, value string
		wantValue   string
		read        func(*sysfs.FS) error // the single-object reader of that device
	}{
		{"region0/size", "0xZZ\n", "0xZZ", readRegion0},
		{"region0/resource", "\n", "", readRegion0},
		{"region0/uuid", "a6d0c8ec-a2fb-4202-a662\n", "a6d0c8ec-a2fb-4202-a662", readRegion0}, // truncated
		{"region0/commit", "2\n", "2", readRegion0},
		{"region0/interleave_ways", "17\n", "17", readRegion0},
		{"region0/interleave_ways", "-1\n", "-1", readRegion0},
		{"region0/target0", "decoder2\n", "decoder2", readRegion0},
		{"region0/locked", "yes\n", "yes", readRegion0},
		{"decoder0.0/target_list", "12,x\n", "12,x", readDecoder00},
		{"decoder0.0/start", "0x-1\n", "0x-1", readDecoder00},
		{"decoder0.0/qos_class", "0x0\n", "0x0", readDecoder00},
		{"decoder0.0/cap_pmem", "\n", "", readDecoder00},
		{"decoder2.0/dpa_size", "0x10000000000000000\n", "0x10000000000000000", readDecoder20}, // out of range
		{"decoder2.0/region", "region0 \n", "region0 ", nil},                                   // tolerated: TrimSpace
		{"decoder2.0/region", "region0.1\n", "region0.1", readDecoder20},
		{"mem0/numa_node", "-1x\n", "-1x", nil},
		{"mem0/pmem/size", "256M\n", "256M", nil},
		{"port1/decoders_committed", "one\n", "one", nil},
	}
	fsys := sysfstest.Materialize(t, capturePath("6.12", "5-bound"))
	for _, tt := range tests {
		t.Run(tt.attr+"="+tt.value, func(t *testing.T) {
			corrupt(t, fsys, tt.attr, tt.value)
			_, err := fsys.Scan()
			if tt.wantValue == "region0 " {
				if err != nil {
					t.Fatalf("Scan: %v (trailing blanks around a name are not an error)", err)
				}
				return
			}
			checkParseError(t, "Scan", err, tt.attr, tt.wantValue)
			if tt.read != nil {
				checkParseError(t, "single reader", tt.read(fsys), tt.attr, tt.wantValue)
			}
		})
	}
}

func readRegion0(fsys *sysfs.FS) error   { _, err := fsys.ReadRegion("region0"); return err }
func readDecoder00(fsys *sysfs.FS) error { _, err := fsys.ReadRootDecoder("decoder0.0"); return err }
func readDecoder20(fsys *sysfs.FS) error {
	_, err := fsys.ReadEndpointDecoder("decoder2.0")
	return err
}

func checkParseError(t *testing.T, op string, err error, attr, value string) {
	t.Helper()
	var pe *sysfs.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: error %v; want a *ParseError", op, err)
	}
	if want := "bus/cxl/devices/" + attr; pe.File != want || pe.Value != value {
		t.Errorf("%s: ParseError{File: %q, Value: %q}; want %q, %q", op, pe.File, pe.Value, want, value)
	}
	if !strings.Contains(err.Error(), attr) || !strings.Contains(err.Error(), `"`+value+`"`) {
		t.Errorf("%s: message %q does not name the file and the value", op, err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: a malformed value must not read as a missing device: %v", op, err)
	}
}

// TestScanMissingAttribute removes a required attribute from a device that
// is still there: that is an error naming the file, not a vanished device.
func TestScanMissingAttribute(t *testing.T) {
	for _, attr := range []string{"region0/size", "region0/commit", "region0/target0", "decoder0.0/target_list",
		"decoder2.0/dpa_size", "mem0/serial", "mem0/ram/size"} {
		t.Run(attr, func(t *testing.T) {
			fsys := sysfstest.Materialize(t, capturePath("6.12", "5-bound"))
			if err := os.Remove(fixturePath(t, fsys, attr)); err != nil {
				t.Fatal(err)
			}
			_, err := fsys.Scan()
			var nodev *sysfs.NoDeviceError
			if err == nil || errors.As(err, &nodev) || !errors.Is(err, unix.ENOENT) {
				t.Fatalf("Scan: error %v; want an ENOENT error that is not a *NoDeviceError", err)
			}
			if !strings.Contains(err.Error(), "bus/cxl/devices/"+attr) {
				t.Errorf("message %q does not name %s", err, attr)
			}
		})
	}
}

// TestScanOptionalAttributes checks that optional attributes are detected
// by presence: removing them from a 6.12 tree gives what 6.1 shows.
func TestScanOptionalAttributes(t *testing.T) {
	fsys := sysfstest.Materialize(t, capturePath("6.12", "5-bound"))
	for _, attr := range []string{"region0/mode", "decoder0.0/qos_class", "decoder0.0/create_ram_region",
		"port1/decoders_committed", "decoder0.0/start"} {
		if err := os.Remove(fixturePath(t, fsys, attr)); err != nil {
			t.Fatal(err)
		}
	}
	topo, err := fsys.Scan()
	if err != nil {
		t.Fatal(err)
	}
	rd, reg, port := topo.RootDecoders[0], topo.Regions[0], topo.Ports[0]
	if reg.Type != "pmem" || rd.QoSClass != nil || rd.CreateRAM || !rd.CreatePmem || port.DecodersCommitted != nil || rd.Start != nil {
		t.Errorf("optional attributes: Type %q QoSClass %v CreateRAM %v CreatePmem %v DecodersCommitted %v Start %v",
			reg.Type, rd.QoSClass, rd.CreateRAM, rd.CreatePmem, port.DecodersCommitted, rd.Start)
	}
}

// TestScanStartUnreadable: start is 0400; a reader without the right to
// read it gets nil, not an error.
func TestScanStartUnreadable(t *testing.T) {
	fsys := sysfstest.Materialize(t, capturePath("6.12", "5-bound"))
	fsys = sysfs.New(denyRead{Backend: fsys.Backend(), suffix: "/start"})
	topo, err := fsys.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if topo.RootDecoders[0].Start != nil || topo.EndpointDecoders[0].Start != nil || topo.SwitchDecoders[0].Start != nil {
		t.Errorf("Start read although unreadable")
	}
	if topo.RootDecoders[0].Size != windowSize {
		t.Errorf("decoder0.0 size %#x", topo.RootDecoders[0].Size)
	}
}

// denyRead answers EACCES to reads of files ending in suffix, as sysfs
// does for a 0400 attribute read by a non-root user.
type denyRead struct {
	sysfs.Backend
	suffix string
}

func (d denyRead) ReadFile(name string) ([]byte, error) {
	if strings.HasSuffix(name, d.suffix) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: unix.EACCES}
	}
	return d.Backend.ReadFile(name)
}

// TestScanNoBus: without bus/cxl the scan fails with ENOENT instead of
// reporting an empty topology that could be mistaken for "no regions".
func TestScanNoBus(t *testing.T) {
	_, err := sysfs.Open(t.TempDir()).Scan()
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("Scan of an empty tree: %v; want ENOENT", err)
	}
}
