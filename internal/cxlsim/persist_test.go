package cxlsim

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// TestStateFileSurvivesProcess: a second Kernel on the same state file
// sees the first one's regions, allocations, ids, SEQNUM and counters, as
// a daemon restarted after a crash sees the same kernel.
func TestStateFileSurvivesProcess(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kernel.json")
	opts := []Option{WithTopology(QEMUTopology()), WithStateFile(file), WithDeleteDelay(0), WithRegisterDelay(time.Hour)}
	k1, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	fs1 := sysfs.New(k1)
	name := makeRegion(t, k1, fs1, "committed")
	if err := fs1.Write(sysfs.RegionBindPath, name); err != nil {
		t.Fatal(err)
	}
	// A second process cannot take the kernel while the first owns it.
	if _, err := New(opts...); !errors.Is(err, ErrStateLocked) {
		t.Fatalf("second New on an owned state file: %v, want ErrStateLocked", err)
	}
	before := dump(t, k1)
	seq := k1.Seqnum()
	writes := k1.Writes("region0/commit")
	// The process "dies": the nd registration it had scheduled is not
	// lost, the kernel finishes it.
	k1.Close()

	k2, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close()
	after := dump(t, k2)
	if d := cmp.Diff(before, after); d != "" {
		t.Errorf("tree after reload differs (-before +after):\n%s", d)
	}
	if k2.Seqnum() != seq || k2.Writes("region0/commit") != writes {
		t.Errorf("seqnum %d writes %d after reload, want %d %d", k2.Seqnum(), k2.Writes("region0/commit"), seq, writes)
	}
	if _, err := k2.ReadLink("bus/nd/devices/" + name + "/driver"); err != nil {
		t.Errorf("pending nd registration was not completed on load: %v", err)
	}
	// The reloaded kernel keeps working: the id allocator and the devres
	// state came back.
	fs2 := sysfs.New(k2)
	if got, _ := fs2.ReadString(dev + "decoder0.0/create_pmem_region"); got != "region1" {
		t.Errorf("create_pmem_region after reload: %q, want region1", got)
	}
	if err := fs2.Write(deletePath, name); err != nil {
		t.Fatal(err)
	}
	if warn, bug := k2.Counts(); warn != 0 || bug != 0 {
		t.Errorf("delete after reload: %d WARN %d BUG", warn, bug)
	}
	if got, _ := fs2.ReadString(dev + "decoder0.0/create_pmem_region"); got != "region0" {
		t.Errorf("id recycling after reload: %q, want region0", got)
	}
}
