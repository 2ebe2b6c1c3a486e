package sysfs_test

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

func TestDeviceAttr(t *testing.T) {
	tests := []struct {
		dev, attr string
		want      string // "" when refused
	}{
		{"region0", "size", "bus/cxl/devices/region0/size"},
		{"decoder0.0", "delete_region", "bus/cxl/devices/decoder0.0/delete_region"},
		{"decoder0.0", "create_pmem_region", "bus/cxl/devices/decoder0.0/create_pmem_region"},
		{"decoder2.0", "dpa_size", "bus/cxl/devices/decoder2.0/dpa_size"},
		{"root0", "uport", "bus/cxl/devices/root0/uport"},
		{"port1", "decoders_committed", "bus/cxl/devices/port1/decoders_committed"},
		{"endpoint2", "uport", "bus/cxl/devices/endpoint2/uport"},
		{"mem0", "serial", "bus/cxl/devices/mem0/serial"},
		{"pmem_region0", "driver", "bus/cxl/devices/pmem_region0/driver"},
		{"dax_region3", "driver", "bus/cxl/devices/dax_region3/driver"},
		{"region0", "target15", "bus/cxl/devices/region0/target15"},
		{"nvdimm-bridge0", "driver", ""},     // not a device the daemon touches
		{"decoder00.0", "delete_region", ""}, // decoder0.0's second name (internal/devname)
		{"region01", "size", ""},
		{"pmem0", "driver", ""},
		{"region0/..", "size", ""},
		{"../region0", "size", ""},
		{"region0", "../delete_region", ""},
		{"region0", "pmem/size", ""},
		{"region0", "Size", ""},
		{"region0", "0size", ""},
		{"region0", "", ""},
		{"", "size", ""},
		{"region0", "size\n", ""},
	}
	for _, tt := range tests {
		got, err := sysfs.DeviceAttr(tt.dev, tt.attr)
		if tt.want == "" {
			if err == nil || !errors.Is(err, unix.EINVAL) {
				t.Errorf("DeviceAttr(%q, %q) = %q, %v; want an EINVAL error", tt.dev, tt.attr, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("DeviceAttr(%q, %q) = %q, %v; want %q", tt.dev, tt.attr, got, err, tt.want)
		}
	}
}
