package e2e

import (
	"strings"
	"testing"

	"github.com/cxlregion/cxlregiond/api"
)

// TestCLIDeleteRefusesOnlineMemory: a ram region whose memory is online
// as System RAM (--sim-system-ram: dax kmem, blocks online movable) is
// shown as such, and delete and disable refuse it with exit status 4 and a
// message that says how much is online, where, and what to do, before
// anything is written. --offline then offlines the memory and deletes it,
// with no finding in the simulated kernel's log.
func TestCLIDeleteRefusesOnlineMemory(t *testing.T) {
	d := startDaemon(t, "--sim-system-ram")
	name := strings.TrimSpace(d.mustCtl("create", "--decoder", "decoder0.2", "--type", "ram", "--size", "512M"))
	waitUntil(t, "the region's memory online", func() bool {
		r := checkRegion(t, []byte(d.mustCtl("info", name, "--json")))
		return r.OnlineMemblocks == 4
	})
	r := checkRegion(t, []byte(d.mustCtl("info", name, "--json")))
	if r.Mode != "system-ram" || r.TotalMemblocks != 4 || r.OnlineMemoryBytes != 512<<20 || !r.Movable || r.TargetNode == nil || *r.TargetNode != 3 {
		t.Errorf("info --json: %+v", r)
	}
	if out := d.mustCtl("info", name); !strings.Contains(out, "system-ram, 512 MiB online (4 of 4 memory blocks), node 3, movable") {
		t.Errorf("info lacks the memory line:\n%s", out)
	}
	if m := d.metric(`cxlregiond_online_memory_bytes{root_decoder="decoder0.2",zone="movable"}`); m != 512<<20 {
		t.Errorf("cxlregiond_online_memory_bytes = %v, want %d", m, 512<<20)
	}

	for _, args := range [][]string{{"delete", name}, {"disable", name}} {
		res := d.ctl(args...)
		if res.code != api.ExitBusy {
			t.Fatalf("%v: exit %d, want %d (busy)\nstderr: %s", args, res.code, api.ExitBusy, res.stderr)
		}
		t.Logf("%v: exit %d: %s", args, res.code, res.stderr)
		for _, want := range []string{"512 MiB", "online as System RAM", "NUMA node 3", "memory", "--offline " + name} {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("%v: message lacks %q:\n%s", args, want, res.stderr)
			}
		}
	}
	if n := d.writes("delete_region") + d.writes("cxl_region/unbind"); n != 0 {
		t.Fatalf("%d teardown writes reached the kernel after the refusals", n)
	}

	d.mustCtl("delete", "--offline", name)
	if n := d.writes("delete_region"); n != 1 {
		t.Errorf("%d delete_region writes, want 1", n)
	}
	log := strings.Join(d.simLines(), "\n")
	for _, finding := range []string{"LEAK:", "CORRUPTION:"} {
		if strings.Contains(log, finding) {
			t.Errorf("simulated kernel reports %s\n%s", finding, log)
		}
	}
	if warn, bug := d.warnings(); warn != 0 || bug != 0 {
		t.Errorf("%d WARNING %d BUG", warn, bug)
	}
}
