package sysfstest

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

func TestUnescape(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{`cxl_port\n`, "cxl_port\n", false},
		{`DEVTYPE=cxl_port\nMODALIAS=cxl:t3\n`, "DEVTYPE=cxl_port\nMODALIAS=cxl:t3\n", false},
		{`a\tb\\c`, "a\tb\\c", false},
		{`\xa0\x00\x18'`, "\xa0\x00\x18'", false},
		{`plain`, "plain", false},
		{`\`, "", true},
		{`\x0`, "", true},
		{`\xzz`, "", true},
		{`\q`, "", true},
	}
	for _, tt := range tests {
		got, err := Unescape(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Unescape(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestBuildReproducesCaptures materializes every capture and reads every
// captured line back from disk through the bus/cxl/devices links.
func TestBuildReproducesCaptures(t *testing.T) {
	// The captures of each kernel and the synthetic trees; testdata/memory
	// is a fixture of another format, built by the sysfs tests themselves.
	files, err := filepath.Glob("../testdata/*/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, file := range files {
		base := filepath.Base(file)
		if base == "write-only.txt" || strings.Contains(base, "listing") || filepath.Base(filepath.Dir(file)) == "memory" {
			continue
		}
		n++
		t.Run(file, func(t *testing.T) {
			root := t.TempDir()
			if err := Build(root, file); err != nil {
				t.Fatal(err)
			}
			entries, err := readCapture(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				p := filepath.Join(root, "bus", "cxl", "devices", filepath.FromSlash(e.path))
				if e.link {
					if got, err := os.Readlink(p); err != nil || got != e.target {
						t.Errorf("%s -> %q, %v; want %q", e.path, got, err, e.target)
					}
					continue
				}
				st, err := os.Stat(p)
				if err != nil {
					t.Errorf("%s: %v", e.path, err)
					continue
				}
				if st.Mode().Perm() != e.mode {
					t.Errorf("%s: mode %v, want %v", e.path, st.Mode().Perm(), e.mode)
				}
				if got, err := os.ReadFile(p); err != nil || string(got) != e.value {
					t.Errorf("%s = %q, %v; want %q", e.path, got, err, e.value)
				}
			}
		})
	}
	if n < 23 {
		t.Fatalf("only %d captures found", n)
	}
}

func TestBuildLayout(t *testing.T) {
	root := t.TempDir()
	err := Build(root, "../testdata/6.12/5-bound.txt",
		WithListing("../testdata/6.12/5-bound-nd-dax-dev-listing.txt"),
		WithBound("nd", "region0", "nd_region"))
	if err != nil {
		t.Fatal(err)
	}
	// Child devices sit inside their parent's directory, as in sysfs.
	if st, err := os.Stat(filepath.Join(root, "bus/cxl/devices/region0/pmem_region0")); err != nil || !st.IsDir() {
		t.Errorf("region0/pmem_region0 is not a directory: %v", err)
	}
	// Write-only attributes of the state exist, empty, with their mode.
	st, err := os.Stat(filepath.Join(root, "bus/cxl/devices/decoder0.0/delete_region"))
	if err != nil || st.Mode().Perm() != 0o200 || st.Size() != 0 {
		t.Errorf("delete_region: %v, %v", st, err)
	}
	// Driver files.
	for _, p := range []string{sysfs.RegionBindPath, sysfs.RegionUnbindPath, sysfs.ACPIBindPath, sysfs.ACPIUnbindPath,
		sysfs.PortUnbindPath, "bus/cxl/drivers/cxl_pmem_region/bind", "bus/nd/drivers/nd_region/unbind"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	// The nd bus from the listing, and the driver link WithBound added.
	if got, err := os.Readlink(filepath.Join(root, "bus/nd/devices/region0")); err != nil ||
		got != "../../../devices/platform/ACPI0017:00/root0/nvdimm-bridge0/ndbus0/region0" {
		t.Errorf("bus/nd/devices/region0 -> %q, %v", got, err)
	}
	drv, err := filepath.EvalSymlinks(filepath.Join(root, "bus/nd/devices/region0/driver"))
	want, _ := filepath.EvalSymlinks(filepath.Join(root, "bus/nd/drivers/nd_region"))
	if err != nil || drv != want {
		t.Errorf("nd region0 driver resolves to %q, %v; want %q", drv, err, want)
	}
	if _, err := os.Lstat(filepath.Join(root, "bus/nd/devices/namespace0.0/driver")); !os.IsNotExist(err) {
		t.Errorf("namespace0.0 bound without WithBound: %v", err)
	}
}

func TestBuildWriteOnlyByState(t *testing.T) {
	// 6.1's write-only.txt lists delete_region for every state but 10,
	// where decoder0.0 does not exist.
	root := t.TempDir()
	if err := Build(root, "../testdata/6.1/10-after-acpi-unbind.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "bus/cxl/devices/decoder0.0")); !os.IsNotExist(err) {
		t.Errorf("decoder0.0 exists after acpi unbind: %v", err)
	}
}

func TestBuildRejects(t *testing.T) {
	tests := []struct {
		name, capture string
		opts          []Option
		wantErr       string
	}{
		{"attribute of no device", "mem0/serial\t0444\t0x0\\n\n", nil, "no device"},
		{"device link leaving devices", "mem0 -> ../../../../etc\n", nil, "leaves devices/"},
		{"read error", "mem0 -> ../../../devices/mem0\nmem0/x\t0444\t<read error: EIO(5)>\n", nil, "read errors"},
		{"bad mode", "mem0 -> ../../../devices/mem0\nmem0/x\t0999\t1\n", nil, "octal"},
		{"no value field", "mem0 -> ../../../devices/mem0\nmem0/x\t0444\n", nil, "no value"},
		{"garbage", "mem0\n", nil, "neither"},
		{"dot-dot path", "mem0 -> ../../../devices/mem0\nmem0/../x\t0444\t1\n", nil, "clean"},
		{"bad escape", "mem0 -> ../../../devices/mem0\nmem0/x\t0444\t\\q\n", nil, "escape"},
		{"driver link astray", "mem0 -> ../../../devices/mem0\nmem0/driver -> ../bus/cxl/drivers/cxl_mem\n", nil, "driver link"},
		{"bind missing device", "mem0 -> ../../../devices/mem0\n", []Option{WithBound("nd", "region0", "nd_region")}, "bind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := path.Join(t.TempDir(), "1-x.txt")
			if err := os.WriteFile(file, []byte(tt.capture), 0o644); err != nil {
				t.Fatal(err)
			}
			err := Build(t.TempDir(), file, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Build: %v; want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
