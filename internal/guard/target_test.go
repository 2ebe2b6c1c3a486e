package guard

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestSysfsTargets(t *testing.T) {
	got := SysfsTargets("/sys")([]string{"decoder0.0", "decoder3.1", "../etc"})
	want := []Target{
		{"/sys/bus/cxl/devices/decoder0.0/delete_region", KindDelete, "decoder0.0", false},
		{"/sys/bus/cxl/devices/decoder0.0/create_pmem_region", KindCreate, "decoder0.0", false},
		{"/sys/bus/cxl/devices/decoder0.0/create_ram_region", KindCreate, "decoder0.0", false},
		{"/sys/bus/cxl/devices/decoder3.1/delete_region", KindDelete, "decoder3.1", false},
		{"/sys/bus/cxl/devices/decoder3.1/create_pmem_region", KindCreate, "decoder3.1", false},
		{"/sys/bus/cxl/devices/decoder3.1/create_ram_region", KindCreate, "decoder3.1", false},
		{"/sys/bus/cxl/drivers/cxl_region/bind", KindRegionDriver, "", false},
		{"/sys/bus/cxl/drivers/cxl_region/unbind", KindRegionDriver, "", true},
		{"/sys/bus/platform/drivers/cxl_acpi/bind", KindACPIDriver, "", false},
		{"/sys/bus/platform/drivers/cxl_acpi/unbind", KindACPIDriver, "", true},
		{"/sys/bus/cxl/drivers/cxl_port/unbind", KindPortDriver, "", true},
		{"/sys/bus/dax/drivers/kmem/bind", KindDaxDriver, "", false},
		{"/sys/bus/dax/drivers/kmem/unbind", KindDaxDriver, "", false},
		{"/sys/bus/dax/drivers/device_dax/bind", KindDaxDriver, "", false},
		{"/sys/bus/dax/drivers/device_dax/unbind", KindDaxDriver, "", false},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("SysfsTargets:\n got %v\nwant %v", got, want)
	}
}

func TestKindLabels(t *testing.T) {
	seen := map[string]bool{}
	for k := KindDelete; k <= KindDaxDriver; k++ {
		s := k.String()
		if s == "unknown" || seen[s] {
			t.Errorf("kind %d has label %q", k, s)
		}
		seen[s] = true
	}
}

// TestUnprivilegedNewIsUnsupported: without CAP_SYS_ADMIN New fails with
// ErrUnsupported and says why, so the daemon can run unguarded. The child
// drops root itself before calling New.
func TestUnprivilegedNewIsUnsupported(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop to nobody")
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = helperEnviron("unprivileged")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("New as nobody: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "needs CAP_SYS_ADMIN") {
		t.Errorf("the error does not say why: %s", out)
	}
}
