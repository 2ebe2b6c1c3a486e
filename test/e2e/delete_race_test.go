package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Fifty concurrent `cxlregionctl delete` of one region: every one exits 0,
// the kernel receives exactly one delete_region write, and logs no
// WARNING. The simulated delete takes 1 s inside delete_region_store, so
// every request arrives while the first is in flight and joins it.
// Mutation: make the engine's coalesce start a new delete per request and
// the simulator logs 49 more writes and WARNINGs.
func TestFiftyConcurrentDeletes(t *testing.T) {
	const clients = 50
	d := startDaemon(t, "--sim-delete-delay", "1s")
	name := strings.TrimSpace(d.mustCtl("create", "--decoder", "decoder0.0", "--type", "pmem", "--size", "256M"))
	before := d.writes("delete_region")

	var wg sync.WaitGroup
	results := make([]result, clients)
	start := make(chan struct{})
	for i := range clients {
		wg.Go(func() {
			<-start
			results[i] = d.run(exec.Command(filepath.Join(binDir, "cxlregionctl"), "delete", name))
		})
	}
	close(start)
	wg.Wait()

	for i, r := range results {
		if r.code != 0 {
			t.Errorf("delete #%d: exit %d: %s", i, r.code, r.stderr)
		}
	}
	if n := d.writes("delete_region") - before; n != 1 {
		t.Errorf("the kernel received %d delete_region writes, want exactly 1", n)
	}
	if warn, bug := d.warnings(); warn != 0 || bug != 0 {
		t.Errorf("kernel log: %d WARNING, %d BUG; want none", warn, bug)
	}
	if out := d.mustCtl("list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("region still listed: %s", out)
	}
	if got := d.metric(`cxlregiond_sysfs_writes_total{attribute="delete_region",result="ok"}`); got != 1 {
		t.Errorf("metrics: %v delete_region writes, want 1", got)
	}
	if got := d.metric("cxlregiond_duplicate_deletes_suppressed_total"); got != clients-1 {
		t.Errorf("metrics: %v duplicate deletes suppressed, want %d", got, clients-1)
	}
}
