package bench

import (
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/cxlsim"
	"github.com/cxlregion/cxlregiond/internal/region"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// quiet is how long setup waits after changing the kernel so that the
// engine's uevent follower has applied the uevents before the next timed
// operation; otherwise its work would land in the timing of whichever
// variant runs next.
const quiet = 2 * time.Millisecond

// zeroDelays makes the simulated kernel answer at once: what remains is
// the daemon's own cost against a careless tool's.
func zeroDelays() []cxlsim.Option {
	return []cxlsim.Option{cxlsim.WithDeleteDelay(0), cxlsim.WithRegisterDelay(0)}
}

// pair is the two sides of a daemon-versus-raw benchmark, each on its own
// simulated kernel so that neither sees the other's regions or uevents.
type pair struct {
	d      *daemon
	raw    careless
	rawK   *cxlsim.Kernel
	target string // the endpoint decoder both sides use
}

func newPair(b *testing.B, place journalPlace) *pair {
	b.Helper()
	d := startDaemon(b, newKernel(b, zeroDelays()...), place.stateDir(b))
	rawK := newKernel(b, zeroDelays()...)
	raw := careless{fs: sysfs.New(rawK)}
	return &pair{d: d, raw: raw, rawK: rawK, target: firstEndpointDecoder(b, raw.fs, root)}
}

// root is the root decoder the daemon-versus-raw benchmarks use: a 1-way
// pmem window of the default topology.
const root = "decoder0.0"

// BenchmarkDelete compares one region delete through the engine
// (validation, settle check, writer turn and flock, identity re-read under
// the lock, one journal fsync, one delete_region write, DPA cleanup) with the
// same writes made straight to sysfs, on a kernel with no delays.
// engine-ns/op and raw-ns/op are the two, engine/raw their ratio,
// engine-writes/op and raw-writes/op show both made the same writes.
func BenchmarkDelete(b *testing.B) {
	for _, place := range journalPlaces() {
		b.Run("journal="+string(place), func(b *testing.B) {
			p := newPair(b, place)
			ctx := b.Context()
			var engine, direct stopwatch
			var engineWrites, rawWrites int
			var syncs int64
			odd := false
			for b.Loop() {
				b.StopTimer()
				r, err := p.d.create(ctx, root)
				if err != nil {
					b.Fatalf("setup: engine create: %v", err)
				}
				rr, err := p.raw.create(root, p.target)
				if err != nil {
					b.Fatalf("setup: raw create: %v", err)
				}
				time.Sleep(quiet)
				ew, rw := p.d.k.Writes(""), p.rawK.Writes("")
				s0 := p.d.syncs.Load()
				b.StartTimer()

				viaEngine := func() { engine.time(b, "engine delete", func() error { return p.d.delete(ctx, r) }) }
				raw := func() { direct.time(b, "raw delete", func() error { return p.raw.delete(rr) }) }
				alternate(&odd, viaEngine, raw)

				b.StopTimer()
				engineWrites += p.d.k.Writes("") - ew
				rawWrites += p.rawK.Writes("") - rw
				syncs += p.d.syncs.Load() - s0
				time.Sleep(quiet)
				b.StartTimer()
			}
			reportPair(b, &engine, &direct, engineWrites, rawWrites)
			if engine.n > 0 {
				b.ReportMetric(float64(syncs)/float64(engine.n), "fsyncs/op")
			}
			p.d.reportStale(b, engine.n)
		})
	}
}

// alternate runs the two sides in turn, swapping the order each time, so
// that whatever one leaves behind (GC, the engine's uevent follower) lands
// on both.
func alternate(odd *bool, viaEngine, raw func()) {
	if *odd {
		raw()
		viaEngine()
	} else {
		viaEngine()
		raw()
	}
	*odd = !*odd
}

// BenchmarkCreate is BenchmarkDelete for a create: the engine's create of
// an unbound 1-way pmem region (validation, a topology scan and target
// pick under the writer, handshake, configuration, commit, one journal
// fsync) against a careless tool's same writes.
func BenchmarkCreate(b *testing.B) {
	for _, place := range journalPlaces() {
		b.Run("journal="+string(place), func(b *testing.B) {
			p := newPair(b, place)
			ctx := b.Context()
			var engine, direct stopwatch
			var engineWrites, rawWrites int
			odd := false
			for b.Loop() {
				b.StopTimer()
				ew, rw := p.d.k.Writes(""), p.rawK.Writes("")
				b.StartTimer()

				var r region.RegionInfo
				var rr rawRegion
				viaEngine := func() {
					engine.time(b, "engine create", func() (err error) { r, err = p.d.create(ctx, root); return err })
				}
				raw := func() {
					direct.time(b, "raw create", func() (err error) { rr, err = p.raw.create(root, p.target); return err })
				}
				alternate(&odd, viaEngine, raw)

				b.StopTimer()
				engineWrites += p.d.k.Writes("") - ew
				rawWrites += p.rawK.Writes("") - rw
				time.Sleep(quiet)
				if err := p.d.delete(ctx, r); err != nil {
					b.Fatalf("cleanup: engine delete: %v", err)
				}
				if err := p.raw.delete(rr); err != nil {
					b.Fatalf("cleanup: raw delete: %v", err)
				}
				time.Sleep(quiet)
				b.StartTimer()
			}
			reportPair(b, &engine, &direct, engineWrites, rawWrites)
			p.d.reportStale(b, engine.n)
		})
	}
}

func reportPair(b *testing.B, engine, direct *stopwatch, engineWrites, rawWrites int) {
	b.Helper()
	if engine.n == 0 || direct.n == 0 {
		return
	}
	b.ReportMetric(engine.nsPerOp(), "engine-ns/op")
	b.ReportMetric(direct.nsPerOp(), "raw-ns/op")
	b.ReportMetric(engine.nsPerOp()/direct.nsPerOp(), "engine/raw")
	b.ReportMetric(float64(engineWrites)/float64(engine.n), "engine-writes/op")
	b.ReportMetric(float64(rawWrites)/float64(direct.n), "raw-writes/op")
}
