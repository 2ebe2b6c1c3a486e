package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/cxlsim"
	"github.com/cxlregion/cxlregiond/internal/region"
)

// stormSize is how many clients ask at once to delete the same region.
const stormSize = 100

// BenchmarkCoalesce compares 100 concurrent deletes of one region through
// the engine with a single delete: the requests that arrive while the
// delete is in flight join it, so the storm should cost about what one
// delete costs (storm/single near 1). Every storm must reach the kernel as
// exactly one delete_region write (guarantee 2); any other count fails the
// benchmark. joined/storm is how many of the 100 got the leader's result by
// joining; the rest (late/storm) arrived after the region was gone and got
// NotFound, which is also correct.
//
// Two cases: the deployed setting (journal on disk, the simulator's
// default 2ms delete_region), and the harshest one (journal on tmpfs, no
// kernel delay), where one delete is shortest, so what 99 extra requests
// cost shows most, and late arrivals are likeliest.
func BenchmarkCoalesce(b *testing.B) {
	for _, c := range []struct {
		place      journalPlace
		deleteTime time.Duration
	}{
		{journalDisk, 2 * time.Millisecond},
		{journalTmpfs, 0},
	} {
		b.Run(fmt.Sprintf("journal=%s/delete=%s", c.place, c.deleteTime), func(b *testing.B) {
			k := newKernel(b, cxlsim.WithDeleteDelay(c.deleteTime), cxlsim.WithRegisterDelay(0))
			d := startDaemon(b, k, c.place.stateDir(b))
			ctx := b.Context()
			var single, storm stopwatch
			var joined, late int
			odd := false
			for b.Loop() {
				b.StopTimer()
				one, err := d.create(ctx, root)
				if err != nil {
					b.Fatalf("setup: create: %v", err)
				}
				many, err := d.create(ctx, root)
				if err != nil {
					b.Fatalf("setup: create: %v", err)
				}
				time.Sleep(quiet)
				d.checkGeneration(one)
				d.checkGeneration(many)
				singleRun := park(ctx, d, one.Name, 1)
				stormRun := park(ctx, d, many.Name, stormSize)
				singleWrites := deleteWrites(k, one.Name)
				stormWrites := deleteWrites(k, many.Name)
				b.StartTimer()

				runSingle := func() { single.time(b, "single delete", singleRun.run) }
				runStorm := func() { storm.time(b, "storm of deletes", stormRun.run) }
				if odd {
					runStorm()
					runSingle()
				} else {
					runSingle()
					runStorm()
				}
				odd = !odd

				b.StopTimer()
				// Guarantee 2: one delete_region write per generation,
				// however many ask.
				if n := deleteWrites(k, one.Name) - singleWrites; n != 1 {
					b.Fatalf("single delete of %s: %d delete_region writes, want 1", one.Name, n)
				}
				if n := deleteWrites(k, many.Name) - stormWrites; n != 1 {
					b.Fatalf("storm of %d deletes of %s: %d delete_region writes, want 1", stormSize, many.Name, n)
				}
				ok, notFound := stormRun.outcome()
				if ok == 0 {
					b.Fatalf("storm on %s: no request succeeded (%d NotFound)", many.Name, notFound)
				}
				joined += ok - 1 // one of them led the delete
				late += notFound
				time.Sleep(quiet)
				b.StartTimer()
			}
			b.ReportMetric(single.nsPerOp(), "single-ns/op")
			b.ReportMetric(storm.nsPerOp(), "storm-ns/op")
			b.ReportMetric(storm.nsPerOp()/single.nsPerOp(), "storm/single")
			b.ReportMetric(float64(joined)/float64(storm.n), "joined/storm")
			b.ReportMetric(float64(late)/float64(storm.n), "late/storm")
			d.reportStale(b, single.n+storm.n)
		})
	}
}

// parked is a group of delete requests for one region whose goroutines are
// started and waiting, so that what is timed is the deletes, not the
// goroutines' start.
type parked struct {
	start chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	errs  []error
}

func park(ctx context.Context, d *daemon, name string, n int) *parked {
	p := &parked{start: make(chan struct{})}
	var ready sync.WaitGroup
	for range n {
		ready.Add(1)
		p.wg.Go(func() {
			ready.Done()
			<-p.start
			// By name, as `cxlregionctl delete regionN` asks: the
			// generation is the one current when the request arrives.
			err := d.eng.Delete(ctx, region.DeleteRequest{Name: name})
			p.mu.Lock()
			p.errs = append(p.errs, err)
			p.mu.Unlock()
		})
	}
	ready.Wait()
	return p
}

// run releases the requests and waits for all of them. Each must succeed
// or find the region gone.
func (p *parked) run() error {
	close(p.start)
	p.wg.Wait()
	for _, err := range p.errs {
		if err != nil && !errors.Is(err, region.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (p *parked) outcome() (ok, notFound int) {
	for _, err := range p.errs {
		if err == nil {
			ok++
		} else {
			notFound++
		}
	}
	return ok, notFound
}

// deleteWrites is how many times the kernel received name on root's
// delete_region.
func deleteWrites(k *cxlsim.Kernel, name string) int {
	return k.Writes(root+"/delete_region", name)
}
