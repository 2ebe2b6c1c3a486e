package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/cxlsim"
)

const (
	windows         = 8
	cyclesPerClient = 3 // create+delete cycles of each client per iteration
)

// eightWindows is eight identical 1-way pmem windows, each over its own host
// bridge with one memdev: root decoders decoder0.0..decoder0.7 that share
// nothing in the kernel, so the only thing that can serialize them is the
// daemon.
func eightWindows() cxlsim.Topology {
	var t cxlsim.Topology
	for i := range windows {
		hb := t.AddHostBridge(12+20*i, 4)
		t.AddWindow(cxlsim.RootDecoder{
			Start: cxlsim.Size(0x390000000 + uint64(i)<<32), Size: 4 << 30,
			HostBridges: []int{hb}, Granularity: 256, Pmem: true,
		})
		t.AddMemdev(cxlsim.Memdev{HostBridge: hb, PmemSize: 2 << 30, Decoders: 4, Serial: uint64(i)})
	}
	return t
}

// kernelTime is what each write costs in the simulated kernel:
// delete_region_store spends deleteTime between its lookup and the release
// (the simulator's delete delay; 2ms is its default), every other write
// spends writeTime before its store method runs (an injected delay). The
// simulated kernel sleeps without its lock, as the real one does.
type kernelTime struct {
	deleteTime, writeTime time.Duration
}

func (kt kernelTime) String() string {
	// ASCII names ("100us", not "100µs") are easier to pass to -bench.
	return strings.ReplaceAll(fmt.Sprintf("delete=%s/write=%s", kt.deleteTime, kt.writeTime), "µ", "u")
}

func (kt kernelTime) boot(b *testing.B, t cxlsim.Topology) *cxlsim.Kernel {
	b.Helper()
	k := newKernel(b, cxlsim.WithTopology(t), cxlsim.WithDeleteDelay(kt.deleteTime))
	for _, pattern := range []string{
		"decoder*/create_pmem_region",
		"decoder*/mode",
		"decoder*/dpa_size",
		"region*/*",
	} {
		k.InjectDelay(pattern, kt.writeTime)
	}
	return k
}

// BenchmarkRootDecoders measures the throughput of create+delete cycles
// of eight concurrent clients, each on its own root decoder ("spread"),
// against the same eight clients all on decoder0.0 ("one"). spread/one is
// the speed-up that independent writers give.
//
// On one root decoder the clients take turns per cycle (a mutex per
// window held from create to delete): a host bridge maps its regions in
// increasing HPA order and commits its decoders in order, so interleaved
// lifetimes on one bridge fail in the kernel, real or simulated. Spread,
// each window has one client and its mutex costs nothing. The engine
// serializes the writes of one root decoder either way.
//
// The first case is issue 14's row: every kernel write takes 2ms, so the
// kernel, not the 2 cores, is the bottleneck, and the target is a 6x
// speed-up for 8 root decoders. The second is the brief's earlier
// realistic times (a 2ms delete, 100µs for any other write), where the
// engine's own CPU work per cycle (a topology scan per create, journal
// writes) is a large share and cannot run more than 2-wide here.
func BenchmarkRootDecoders(b *testing.B) {
	kernelBound := kernelTime{deleteTime: 2 * time.Millisecond, writeTime: 2 * time.Millisecond}
	realistic := kernelTime{deleteTime: 2 * time.Millisecond, writeTime: 100 * time.Microsecond}
	for _, c := range []struct {
		place journalPlace
		kt    kernelTime
	}{
		{journalTmpfs, kernelBound},
		{journalDisk, realistic},
	} {
		b.Run("journal="+string(c.place)+"/"+c.kt.String(), func(b *testing.B) {
			d := startDaemon(b, c.kt.boot(b, eightWindows()), c.place.stateDir(b))
			ctx := b.Context()
			var spread, one stopwatch
			odd := false
			for b.Loop() {
				runSpread := func() {
					spread.time(b, "spread", func() error {
						return runClients(ctx, d, func(client int) string { return fmt.Sprintf("decoder0.%d", client) })
					})
				}
				runOne := func() {
					one.time(b, "one", func() error {
						return runClients(ctx, d, func(int) string { return "decoder0.0" })
					})
				}
				if odd {
					runOne()
					runSpread()
				} else {
					runSpread()
					runOne()
				}
				odd = !odd
			}
			cycles := float64(windows * cyclesPerClient)
			spreadRate := cycles / (spread.nsPerOp() / 1e9)
			oneRate := cycles / (one.nsPerOp() / 1e9)
			b.ReportMetric(spreadRate, "spread-cycles/s")
			b.ReportMetric(oneRate, "one-cycles/s")
			b.ReportMetric(spreadRate/oneRate, "spread/one")
			d.reportStale(b, 2*windows*cyclesPerClient*spread.n)
		})
	}
}

// runClients runs windows clients at once, each doing cyclesPerClient
// create+delete cycles on the root decoder rootOf gives it, and returns
// the first error.
func runClients(ctx context.Context, d *daemon, rootOf func(client int) string) error {
	turns := make(map[string]*sync.Mutex) // per root decoder; see BenchmarkRootDecoders
	for c := range windows {
		turns[rootOf(c)] = new(sync.Mutex)
	}
	errs := make(chan error, windows)
	var wg sync.WaitGroup
	for c := range windows {
		root := rootOf(c)
		turn := turns[root]
		wg.Go(func() {
			for range cyclesPerClient {
				if err := cycle(ctx, d, root, turn); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func cycle(ctx context.Context, d *daemon, root string, turn *sync.Mutex) error {
	turn.Lock()
	defer turn.Unlock()
	r, err := d.create(ctx, root)
	if err != nil {
		return fmt.Errorf("create on %s: %w", root, err)
	}
	if err := d.delete(ctx, r); err != nil {
		return fmt.Errorf("delete %s on %s: %w", r.Name, root, err)
	}
	return nil
}
