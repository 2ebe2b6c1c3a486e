package cxlsim

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoadTopologyFiles(t *testing.T) {
	for _, tc := range []struct {
		file string
		want Topology
	}{
		{"testdata/topology-default.json", DefaultTopology()},
		{"testdata/topology-qemu.json", QEMUTopology()},
	} {
		f, err := os.Open(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := LoadTopology(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s differs from the built-in topology (-want +got):\n%s", tc.file, d)
		}
	}
}

func TestLoadTopologyRejects(t *testing.T) {
	for name, js := range map[string]string{
		"no host bridge":       `{"host_bridges": [], "root_decoders": [], "memdevs": []}`,
		"unknown field":        `{"host_bridges": [{"uid": 12, "decoders": 1}], "bogus": 1}`,
		"3 bridges interleave": `{"host_bridges": [{"uid": 1, "decoders": 1},{"uid": 2, "decoders": 1},{"uid": 3, "decoders": 1},{"uid": 4, "decoders": 1},{"uid": 5, "decoders": 1}], "root_decoders": [{"start": "0", "size": "5G", "host_bridges": [0,1,2,3,4], "granularity": 256, "pmem": true}]}`,
		"bad granularity":      `{"host_bridges": [{"uid": 12, "decoders": 1}], "root_decoders": [{"start": "0", "size": "1G", "host_bridges": [0], "granularity": 100, "pmem": true}]}`,
		"unaligned window":     `{"host_bridges": [{"uid": 12, "decoders": 1}], "root_decoders": [{"start": "0x1000", "size": "1G", "host_bridges": [0], "granularity": 256, "pmem": true}]}`,
		"overlapping windows":  `{"host_bridges": [{"uid": 12, "decoders": 1}], "root_decoders": [{"start": "0", "size": "1G", "host_bridges": [0], "granularity": 256, "pmem": true}, {"start": "0x10000000", "size": "1G", "host_bridges": [0], "granularity": 256, "ram": true}]}`,
		"memdev on no bridge":  `{"host_bridges": [{"uid": 12, "decoders": 1}], "memdevs": [{"host_bridge": 3, "pmem_size": "256M", "decoders": 1}]}`,
		"odd capacity":         `{"host_bridges": [{"uid": 12, "decoders": 1}], "memdevs": [{"host_bridge": 0, "pmem_size": "100M", "decoders": 1}]}`,
		"bad size string":      `{"host_bridges": [{"uid": 12, "decoders": 1}], "memdevs": [{"host_bridge": 0, "pmem_size": "lots", "decoders": 1}]}`,
	} {
		if _, err := LoadTopology(strings.NewReader(js)); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}

// TestDefaultTopologyNames checks the kernel-style names the default
// topology enumerates.
func TestDefaultTopologyNames(t *testing.T) {
	k, err := New(WithRegisterDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	names, err := k.ReadDir("bus/cxl/devices")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"root0", "port1", "port2", "endpoint3", "endpoint10", "decoder0.0", "decoder0.3",
		"decoder1.3", "decoder2.0", "decoder3.0", "decoder10.3", "mem0", "mem7", "pmem7", "nvdimm-bridge0"} {
		if !contains(names, want) {
			t.Errorf("%s missing from bus/cxl/devices %v", want, names)
		}
	}
	for dev, want := range map[string]string{
		"decoder0.0/target_list": "12\n", "decoder0.1/target_list": "12,32\n", "decoder0.1/interleave_ways": "2\n",
		"decoder0.2/cap_ram": "1\n", "decoder0.2/cap_pmem": "0\n", "decoder0.0/create_pmem_region": "region0\n",
		"decoder0.3/create_ram_region": "region3\n", "decoder0.3/create_pmem_region": "region3\n",
		"port2/decoders_committed": "0\n", "decoder2.0/target_list": "0,1,2,3\n", "mem5/ram/size": "0x80000000\n",
	} {
		b, err := k.ReadFile("bus/cxl/devices/" + dev)
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", dev, b, err, want)
		}
	}
	for link, want := range map[string]string{
		"bus/cxl/devices/endpoint7":                       "../../../devices/platform/ACPI0017:00/root0/port2/endpoint7",
		"bus/cxl/devices/endpoint7/uport":                 "../../../../../pci0000:20/0000:20:00.0/0000:21:00.0/mem4",
		"bus/cxl/devices/root0/dport32":                   "../../../pci0000:20",
		"bus/cxl/devices/port1/dport3":                    "../../../../pci0000:0c/0000:0c:03.0",
		"bus/cxl/devices/decoder10.3":                     "../../../devices/platform/ACPI0017:00/root0/port2/endpoint10/decoder10.3",
		"devices/platform/ACPI0017:00/root0/port1/driver": "../../../../../bus/cxl/drivers/cxl_port",
	} {
		got, err := k.ReadLink(link)
		if err != nil || got != want {
			t.Errorf("readlink %s = %q, %v; want %q", link, got, err, want)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
