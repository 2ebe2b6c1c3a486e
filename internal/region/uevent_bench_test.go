package region

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/cxlsim"
	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
	"github.com/cxlregion/cxlregiond/internal/uevent"
)

// BenchmarkUevent is issue 14's "one uevent" row: the engine applying one
// region uevent (a change of a cxl_region: the region re-read from sysfs and
// the reading applied to the model) to a model of 64 regions against a
// model of 4096, alternating iteration by iteration. Applying a uevent must
// not grow with the host (O(1)): large/small is the ratio (target ≤ 1.5),
// small-ns/op and large-ns/op the two (target ≤ 10 µs), small-allocs/op and
// large-allocs/op the allocations of one apply on each.
//
// It calls the follower's applyUevent directly, so what is timed is the
// apply, not the socket or the goroutine hand-off; the engines run without
// a uevent source. small-read-ns/op and large-read-ns/op are the region's
// sysfs reading inside the apply, timed alone: the rest is the model's.
// Both models are built by the engine's startup scan of a
// simulated kernel holding regions made as a careless tool makes them (two
// 256 MiB pmem regions per memdev, 16 memdevs per 1-way window: 2 windows
// for 64 regions, 128 for 4096, as bench's ScanAtScale host). The region
// read is the simulator's, the same cost on both sides.
func BenchmarkUevent(b *testing.B) {
	small := modelOf(b, 2)
	large := modelOf(b, 128)
	ctx := b.Context()
	var st, lt, sr, lr time.Duration
	n := 0
	odd := false
	for b.Loop() {
		first, second := small, large
		if odd {
			first, second = large, small
		}
		odd = !odd
		d1 := first.apply(ctx)
		d2 := second.apply(ctx)
		if first == small {
			st, lt = st+d1, lt+d2
		} else {
			st, lt = st+d2, lt+d1
		}
		sr += small.read(b)
		lr += large.read(b)
		n++
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(n) }
	sns, lns := per(st), per(lt)
	b.ReportMetric(sns, "small-ns/op")
	b.ReportMetric(lns, "large-ns/op")
	b.ReportMetric(lns/sns, "large/small")
	// What of an apply is the region's sysfs reading (the same ReadRegion
	// the apply makes, timed alone), and what is the model's.
	b.ReportMetric(per(sr), "small-read-ns/op")
	b.ReportMetric(per(lr), "large-read-ns/op")
	b.ReportMetric(small.allocs(ctx), "small-allocs/op")
	b.ReportMetric(large.allocs(ctx), "large-allocs/op")
	b.ReportMetric(float64(len(large.eng.Regions())), "regions")
}

// uevModel is an engine whose model holds the regions of a simulated
// kernel, and the uevent it is fed.
type uevModel struct {
	eng        *Engine
	ev         uevent.Event
	needRescan chan string
}

// apply feeds the uevent to the engine once and returns how long it took.
func (m *uevModel) apply(ctx context.Context) time.Duration {
	start := time.Now()
	m.eng.applyUevent(ctx, m.ev, m.needRescan)
	return time.Since(start)
}

// read times the sysfs reading an apply makes of the region, alone.
func (m *uevModel) read(b *testing.B) time.Duration {
	start := time.Now()
	_, err := m.eng.fs.ReadRegion(m.ev.Name())
	d := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// allocs is the heap allocations of one apply, over 200 of them.
func (m *uevModel) allocs(ctx context.Context) float64 {
	const runs = 200
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		m.eng.applyUevent(ctx, m.ev, m.needRescan)
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / runs
}

// modelOf boots a simulated kernel of windows 1-way pmem windows, each over
// its own host bridge with 16 memdevs of two 256 MiB regions, makes every
// region, and starts an engine (no uevent source, no periodic rescan) whose
// startup scan reads them all. The uevent is a change of a region in the
// middle of the last window.
func modelOf(b *testing.B, windows int) *uevModel {
	b.Helper()
	const (
		memdevsPerWindow = 16
		regionsPerMemdev = 2
		size             = 256 << 20
	)
	var t cxlsim.Topology
	perWindow := uint64(memdevsPerWindow * regionsPerMemdev * size)
	for i := range windows {
		hb := t.AddHostBridge(12+i, memdevsPerWindow*regionsPerMemdev)
		t.AddWindow(cxlsim.RootDecoder{
			Start: cxlsim.Size(0x1000000000 + uint64(i)*perWindow), Size: cxlsim.Size(perWindow),
			HostBridges: []int{hb}, Granularity: 256, Pmem: true,
		})
		for m := range memdevsPerWindow {
			t.AddMemdev(cxlsim.Memdev{HostBridge: hb, PmemSize: regionsPerMemdev * size, Decoders: 4, Serial: uint64(i*memdevsPerWindow + m)})
		}
	}
	k, err := cxlsim.New(cxlsim.WithTopology(t), cxlsim.WithDeleteDelay(0), cxlsim.WithRegisterDelay(0), cxlsim.WithLogLines(100))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { k.Close() })
	fs := sysfs.New(k)
	write := func(dev, attr, value string) {
		p, err := sysfs.DeviceAttr(dev, attr)
		if err == nil {
			err = fs.Write(p, value)
		}
		if err != nil {
			b.Fatalf("setup: write %s/%s: %v", dev, attr, err)
		}
	}
	var last string
	endpointBase := windows + 1 // endpoint port ids follow root0's host bridge ports
	for i := range windows {
		root := fmt.Sprintf("decoder0.%d", i)
		for m := range memdevsPerWindow {
			for r := range regionsPerMemdev {
				target := fmt.Sprintf("decoder%d.%d", endpointBase+i*memdevsPerWindow+m, r)
				name, err := fs.NextRegionName(root, "pmem")
				if err != nil {
					b.Fatalf("setup: %v", err)
				}
				write(root, "create_pmem_region", name)
				write(name, "interleave_granularity", "256")
				write(name, "interleave_ways", "1")
				n, _ := strconv.Atoi(name[len("region"):])
				write(name, "uuid", fmt.Sprintf("a1b2c3d4-0000-4000-8000-%012d", n))
				write(name, "size", strconv.Itoa(size))
				write(target, "mode", "pmem")
				write(target, "dpa_size", strconv.Itoa(size))
				write(name, "target0", target)
				write(name, "commit", "1")
				if i == windows-1 && m == memdevsPerWindow/2 && r == 0 {
					last = name
				}
			}
		}
	}
	dir := b.TempDir()
	writers, err := lock.NewRegistry(fs, filepath.Join(dir, "lock"))
	if err != nil {
		b.Fatal(err)
	}
	eng, err := New(Config{FS: fs, Writers: writers, StateDir: filepath.Join(dir, "state")})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("engine Run: %v", err)
		}
	})
	select {
	case <-eng.Ready():
	case err := <-done:
		b.Fatalf("engine stopped before ready: %v", err)
	case <-time.After(2 * time.Minute):
		b.Fatal("engine not ready after 2 minutes")
	}
	if got, want := len(eng.Regions()), windows*memdevsPerWindow*regionsPerMemdev; got != want {
		b.Fatalf("setup: the model holds %d regions, want %d", got, want)
	}
	before, err := eng.Region(last)
	if err != nil {
		b.Fatal(err)
	}
	m := &uevModel{eng: eng, needRescan: make(chan string, 1), ev: uevent.Event{
		Action: uevent.Change, Subsystem: "cxl", DevType: "cxl_region",
		DevPath: fmt.Sprintf("/devices/platform/ACPI0017:00/root0/decoder0.%d/%s", windows-1, last),
	}}
	// The uevent must be applied as the same generation, or what is timed
	// is not the common case.
	m.apply(ctx)
	if after, err := eng.Region(last); err != nil || after.Generation != before.Generation {
		b.Fatalf("setup: %s after a change uevent: %+v, %v; want generation %d", last, after, err, before.Generation)
	}
	return m
}
