package uevent

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultFilter(t *testing.T) {
	tests := []struct {
		name                                string
		subsystem, devType, devPath, driver string
		keep                                bool
	}{
		{"cxl region", "cxl", "cxl_region", "/devices/platform/ACPI0017:00/root0/decoder0.0/region0", "", true},
		{"cxl root decoder", "cxl", "cxl_decoder_root", "/devices/platform/ACPI0017:00/root0/decoder0.0", "", true},
		{"nd region bind", "nd", "nd_pmem", "/devices/platform/ACPI0017:00/root0/nvdimm-bridge0/ndbus0/region0", "nd_region", true},
		{"dax region", "dax", "", "/devices/platform/ACPI0017:00/root0/decoder0.0/region0/dax_region0/dax0.0", "", true},
		{"cxl_acpi bind", "platform", "", "/devices/platform/ACPI0017:00", "cxl_acpi", true},
		{"cxl_acpi unbind has no DRIVER", "platform", "", "/devices/platform/ACPI0017:00", "", true},
		{"other platform device", "platform", "", "/devices/platform/serial8250", "serial8250", false},
		{"other platform device unbind", "platform", "", "/devices/platform/ACPI0007:01", "", false},
		{"cxl_acpi module", "module", "", "/module/cxl_acpi", "", false},
		{"cxl_acpi driver object", "drivers", "", "/bus/platform/drivers/cxl_acpi", "", false},
		{"wakeup below ACPI0017", "wakeup", "", "/devices/platform/ACPI0017:00/wakeup/wakeup3", "", false},
		{"pci", "pci", "", "/devices/pci0000:0c/0000:0c:00.0", "pcieport", false},
		{"memory block: a region's memory online or offline", "memory", "", "/devices/system/memory/memory40", "", true},
		{"net", "net", "", "/devices/virtual/net/lo", "", false},
		{"prefix of cxl", "cx", "", "/x", "", false},
		{"empty", "", "", "", "", false},
	}
	for _, tt := range tests {
		got := DefaultFilter([]byte(tt.subsystem), []byte(tt.devType), []byte(tt.devPath), []byte(tt.driver))
		if got != tt.keep {
			t.Errorf("%s: DefaultFilter = %v, want %v", tt.name, got, tt.keep)
		}
	}
}

// What the default filter keeps of each real-kernel phase: every cxl and nd
// event and the ACPI0017 platform events; not module, drivers, wakeup, pci,
// bus or class events.
func TestDefaultFilterCaptures(t *testing.T) {
	want := map[string][2]int{ // kept, total
		"6.1/01-module-load.txt":                    {20, 45},
		"6.1/02-create-to-bind.txt":                 {10, 10},
		"6.1/03-unbind.txt":                         {9, 9},
		"6.1/04-delete.txt":                         {1, 1},
		"6.1/05-acpi-unbind-with-bound-region.txt":  {28, 29},
		"6.1/06-acpi-rebind.txt":                    {16, 17},
		"6.12/01-module-load.txt":                   {20, 48},
		"6.12/02-create-to-bind.txt":                {10, 10},
		"6.12/03-unbind.txt":                        {9, 9},
		"6.12/04-delete.txt":                        {1, 1},
		"6.12/05-acpi-unbind-with-bound-region.txt": {29, 30},
		"6.12/06-acpi-rebind.txt":                   {9, 10},
	}
	for _, file := range captureFiles(t) {
		key := filepath.Base(filepath.Dir(file)) + "/" + filepath.Base(file)
		msgs := loadCapture(t, file)
		kept := 0
		for _, c := range msgs {
			ev, err := Parse(c.bytes())
			if err != nil {
				t.Fatalf("%s: %v", c.where, err)
			}
			if DefaultFilter([]byte(ev.Subsystem), []byte(ev.DevType), []byte(ev.DevPath), []byte(ev.Driver)) {
				kept++
			}
		}
		if got := [2]int{kept, len(msgs)}; got != want[key] {
			t.Errorf("%s: kept/total = %v, want %v", key, got, want[key])
		}
	}
}

// Filtering out a message allocates nothing: the bytes are scanned in place
// and strings are built only for kept events.
// Mutation: build the Event (or strings for the filter) before filtering →
// the count goes above 0.
func TestFilteredOutMessagesDoNotAllocate(t *testing.T) {
	dropped := []string{
		"add@/module/cxl_acpi\x00ACTION=add\x00DEVPATH=/module/cxl_acpi\x00SUBSYSTEM=module\x00SEQNUM=620\x00",
		"bind@/devices/platform/serial8250\x00ACTION=bind\x00DEVPATH=/devices/platform/serial8250\x00SUBSYSTEM=platform\x00DRIVER=serial8250\x00SEQNUM=621\x00",
		"change@/devices/virtual/net/lo\x00ACTION=change\x00DEVPATH=/devices/virtual/net/lo\x00SUBSYSTEM=net\x00INTERFACE=lo\x00IFINDEX=1\x00SEQNUM=622\x00",
	}
	s := newStream(DefaultFilter, discardLogger())
	for _, m := range dropped {
		msg := []byte(m)
		allocs := testing.AllocsPerRun(100, func() {
			s.haveSeq = false // no gap: only scanning and filtering are measured
			if _, ok, err := s.accept(msg, kernel); ok || err != nil {
				t.Fatalf("message kept (%v, %v)", ok, err)
			}
		})
		if allocs != 0 {
			t.Errorf("filtering out %q: %v allocations, want 0", m[:strings.IndexByte(m, 0)], allocs)
		}
	}
	// The measurement can see an allocation: a kept event costs one copy.
	kept := []byte("add@/devices/platform/ACPI0017:00/root0/decoder0.0/region0\x00ACTION=add\x00DEVPATH=/devices/platform/ACPI0017:00/root0/decoder0.0/region0\x00SUBSYSTEM=cxl\x00DEVTYPE=cxl_region\x00SEQNUM=788\x00")
	allocs := testing.AllocsPerRun(100, func() {
		s.haveSeq = false
		if _, ok, err := s.accept(kept, kernel); !ok || err != nil {
			t.Fatalf("cxl region event not kept (%v, %v)", ok, err)
		}
	})
	if allocs != 1 {
		t.Errorf("keeping an event: %v allocations, want 1 (one copy of the message)", allocs)
	}
}
