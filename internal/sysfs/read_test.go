package sysfs_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
	"github.com/cxlregion/cxlregiond/internal/sysfs/sysfstest"
)

// TestSingleReadersMatchScan checks that the single-object readers the
// engine uses between scans decode exactly what Scan decodes.
func TestSingleReadersMatchScan(t *testing.T) {
	for _, file := range []string{capturePath("6.1", "5-bound"), capturePath("6.12", "5-bound"),
		capturePath("6.12", "2-created"), filepath.Join("testdata", "synthetic", "ram-2way.txt")} {
		t.Run(file, func(t *testing.T) {
			fsys := sysfstest.Materialize(t, file,
				sysfstest.WithListing(filepath.Join("testdata", "6.12", "5-bound-nd-dax-dev-listing.txt")),
				sysfstest.WithBound("nd", "region0", "nd_region"))
			topo, err := fsys.Scan()
			if err != nil {
				t.Fatal(err)
			}
			if len(topo.Regions) == 0 || len(topo.RootDecoders) == 0 || len(topo.EndpointDecoders) == 0 {
				t.Fatalf("fixture lacks a region or decoder: %+v", topo)
			}
			for _, want := range topo.Regions {
				got, err := fsys.ReadRegion(want.Name)
				if err != nil {
					t.Fatalf("ReadRegion(%s): %v", want.Name, err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("ReadRegion(%s) differs from Scan (-scan +read):\n%s", want.Name, diff)
				}
			}
			for _, want := range topo.RootDecoders {
				got, err := fsys.ReadRootDecoder(want.Name)
				if err != nil {
					t.Fatalf("ReadRootDecoder(%s): %v", want.Name, err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("ReadRootDecoder(%s) differs from Scan (-scan +read):\n%s", want.Name, diff)
				}
			}
			for _, want := range topo.EndpointDecoders {
				got, err := fsys.ReadEndpointDecoder(want.Name)
				if err != nil {
					t.Fatalf("ReadEndpointDecoder(%s): %v", want.Name, err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("ReadEndpointDecoder(%s) differs from Scan (-scan +read):\n%s", want.Name, diff)
				}
			}
		})
	}
}

// TestReadMissing checks that asking for a device that is not there gives
// an error both spellings of "not found" match.
func TestReadMissing(t *testing.T) {
	fsys := sysfstest.Materialize(t, capturePath("6.12", "5-bound"))
	gone := sysfstest.Materialize(t, capturePath("6.12", "10-after-acpi-unbind"))
	tests := []struct {
		name string
		read func() error
	}{
		{"ReadRegion region1", func() error { _, err := fsys.ReadRegion("region1"); return err }},
		{"ReadRootDecoder decoder0.1", func() error { _, err := fsys.ReadRootDecoder("decoder0.1"); return err }},
		{"ReadEndpointDecoder decoder2.1", func() error { _, err := fsys.ReadEndpointDecoder("decoder2.1"); return err }},
		{"ReadRootDecoder after acpi unbind", func() error { _, err := gone.ReadRootDecoder("decoder0.0"); return err }},
		{"ReadEndpointDecoder after acpi unbind", func() error { _, err := gone.ReadEndpointDecoder("decoder2.0"); return err }},
	}
	for _, tt := range tests {
		err := tt.read()
		var nodev *sysfs.NoDeviceError
		if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, unix.ENOENT) || !errors.As(err, &nodev) {
			t.Errorf("%s: error %v; want a *NoDeviceError matching fs.ErrNotExist and unix.ENOENT", tt.name, err)
		}
	}
}

func TestReadWrongKindOrName(t *testing.T) {
	fsys := sysfstest.Materialize(t, capturePath("6.12", "5-bound"))
	tests := []struct {
		name       string
		read       func() error
		wantEINVAL bool
	}{
		{"region name with slash", func() error { _, err := fsys.ReadRegion("region0/.."); return err }, true},
		{"decoder as region", func() error { _, err := fsys.ReadRegion("decoder0.0"); return err }, true},
		{"region as decoder", func() error { _, err := fsys.ReadRootDecoder("region0"); return err }, true},
		{"endpoint decoder as root decoder", func() error { _, err := fsys.ReadRootDecoder("decoder2.0"); return err }, false},
		{"root decoder as endpoint decoder", func() error { _, err := fsys.ReadEndpointDecoder("decoder0.0"); return err }, false},
		{"switch decoder as endpoint decoder", func() error { _, err := fsys.ReadEndpointDecoder("decoder1.0"); return err }, false},
	}
	for _, tt := range tests {
		err := tt.read()
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		if errors.Is(err, unix.EINVAL) != tt.wantEINVAL {
			t.Errorf("%s: error %v; EINVAL %v wanted", tt.name, err, tt.wantEINVAL)
		}
		if errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: error %v claims the device does not exist", tt.name, err)
		}
	}
}

func TestNextRegionName(t *testing.T) {
	tests := []struct {
		kernel, state, decoder, typ string
		want                        string
		wantErr                     error
	}{
		{"6.12", "1-idle", "decoder0.0", "pmem", "region0", nil},
		{"6.12", "2-created", "decoder0.0", "pmem", "region1", nil},
		{"6.12", "2-created", "decoder0.0", "ram", "region1", nil},
		{"6.1", "2-created", "decoder0.0", "pmem", "region1", nil},
		{"6.1", "2-created", "decoder0.0", "ram", "", unix.ENOENT}, // no create_ram_region before v6.3
		{"6.12", "10-after-acpi-unbind", "decoder0.0", "pmem", "", unix.ENOENT},
		{"6.12", "2-created", "decoder0.0", "dynamic_ram_1", "", unix.EINVAL},
		{"6.12", "2-created", "region0", "pmem", "", unix.EINVAL},
	}
	trees := make(map[string]*sysfs.FS) // reads only: one tree per capture
	for _, tt := range tests {
		p := capturePath(tt.kernel, tt.state)
		if trees[p] == nil {
			trees[p] = sysfstest.Materialize(t, p)
		}
		got, err := trees[p].NextRegionName(tt.decoder, tt.typ)
		if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("%s/%s NextRegionName(%s, %s) = %q, %v; want %q, %v", tt.kernel, tt.state, tt.decoder, tt.typ, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestNextRegionNameMalformed(t *testing.T) {
	fsys := sysfstest.Materialize(t, capturePath("6.12", "1-idle"))
	corrupt(t, fsys, "decoder0.0/create_pmem_region", "region-1\n")
	_, err := fsys.NextRegionName("decoder0.0", "pmem")
	var pe *sysfs.ParseError
	if !errors.As(err, &pe) || pe.File != "bus/cxl/devices/decoder0.0/create_pmem_region" || pe.Value != "region-1" {
		t.Fatalf("error %v; want a ParseError naming create_pmem_region and its value", err)
	}
	if !strings.Contains(err.Error(), "create_pmem_region") || !strings.Contains(err.Error(), "region-1") {
		t.Errorf("message %q does not name file and value", err)
	}
}
