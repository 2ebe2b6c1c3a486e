package metrics

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/guard"
	"github.com/cxlregion/cxlregiond/internal/region"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
	"github.com/cxlregion/cxlregiond/internal/uevent"
)

// series gathers the registry and returns every non-zero sample of the
// cxlregiond_ families as "name{l1=v1,l2=v2}" (labels sorted), histograms
// as their _count and _sum. Comparing whole maps catches an increment of the
// wrong series as well as a missing one.
func series(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, namespace+"_") || name == namespace+"_build_info" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			sort.Strings(labels)
			key := "{" + strings.Join(labels, ",") + "}"
			add := func(n string, v float64) {
				if v != 0 {
					out[n+key] = v
				}
			}
			switch {
			case m.Counter != nil:
				add(name, m.Counter.GetValue())
			case m.Gauge != nil:
				add(name, m.Gauge.GetValue())
			case m.Histogram != nil:
				add(name+"_count", float64(m.Histogram.GetSampleCount()))
				add(name+"_sum", m.Histogram.GetSampleSum())
			}
		}
	}
	return out
}

func opDone(op string, res region.Result, d time.Duration, joined bool) region.Event {
	return region.Event{Kind: region.OperationDone, Operation: region.Operation{
		Op: op, Target: "region0", Result: res, Duration: d, Joined: joined,
	}}
}

func TestFollowCountsEvents(t *testing.T) {
	tests := []struct {
		name   string
		events []region.Event
		want   map[string]float64
	}{
		{
			name:   "delete ok",
			events: []region.Event{opDone("delete", region.ResultOK, 1500*time.Millisecond, false)},
			want: map[string]float64{
				"cxlregiond_operations_total{operation=delete,result=ok}":       1,
				"cxlregiond_operation_duration_seconds_count{operation=delete}": 1,
				"cxlregiond_operation_duration_seconds_sum{operation=delete}":   1.5,
			},
		},
		{
			name: "joined deletes are counted as operations and as suppressed duplicates",
			events: []region.Event{
				opDone("delete", region.ResultOK, time.Second, false),
				opDone("delete", region.ResultOK, time.Second, true),
				opDone("delete", region.ResultNotFound, 0, true),
			},
			want: map[string]float64{
				"cxlregiond_operations_total{operation=delete,result=ok}":        2,
				"cxlregiond_operations_total{operation=delete,result=not_found}": 1,
				"cxlregiond_operation_duration_seconds_count{operation=delete}":  3,
				"cxlregiond_operation_duration_seconds_sum{operation=delete}":    2,
				"cxlregiond_duplicate_deletes_suppressed_total{}":                2,
			},
		},
		{
			name: "every operation and result",
			events: []region.Event{
				opDone("create", region.ResultKernelError, 2*time.Second, false),
				opDone("enable", region.ResultFrozen, time.Second, false),
				opDone("disable", region.ResultTimeout, time.Second, false),
			},
			want: map[string]float64{
				"cxlregiond_operations_total{operation=create,result=kernel_error}": 1,
				"cxlregiond_operations_total{operation=enable,result=frozen}":       1,
				"cxlregiond_operations_total{operation=disable,result=timeout}":     1,
				"cxlregiond_operation_duration_seconds_count{operation=create}":     1,
				"cxlregiond_operation_duration_seconds_sum{operation=create}":       2,
				"cxlregiond_operation_duration_seconds_count{operation=enable}":     1,
				"cxlregiond_operation_duration_seconds_sum{operation=enable}":       1,
				"cxlregiond_operation_duration_seconds_count{operation=disable}":    1,
				"cxlregiond_operation_duration_seconds_sum{operation=disable}":      1,
			},
		},
		{
			name:   "unknown operation and result fold into other",
			events: []region.Event{opDone("frobnicate", region.Result("weird"), time.Second, false)},
			want: map[string]float64{
				"cxlregiond_operations_total{operation=other,result=other}":    1,
				"cxlregiond_operation_duration_seconds_count{operation=other}": 1,
				"cxlregiond_operation_duration_seconds_sum{operation=other}":   1,
			},
		},
		{
			name: "uevents by action",
			events: []region.Event{
				{Kind: region.UeventReceived, Uevent: uevent.Event{Action: uevent.Add, DevPath: "/devices/x/region0"}},
				{Kind: region.UeventReceived, Uevent: uevent.Event{Action: uevent.Add, DevPath: "/devices/x/region1"}},
				{Kind: region.UeventReceived, Uevent: uevent.Event{Action: uevent.Unbind}},
				{Kind: region.UeventReceived, Uevent: uevent.Event{Action: "explode"}},
			},
			want: map[string]float64{
				"cxlregiond_uevents_total{action=add}":    2,
				"cxlregiond_uevents_total{action=unbind}": 1,
				"cxlregiond_uevents_total{action=other}":  1,
			},
		},
		{
			name: "rescans by reason; only lost uevents count as resyncs",
			events: []region.Event{
				{Kind: region.Rescanned, Reason: "startup"},
				{Kind: region.Rescanned, Reason: "overflow"},
				{Kind: region.Rescanned, Reason: "gap"},
				{Kind: region.Rescanned, Reason: "gap"},
				{Kind: region.Rescanned, Reason: "periodic"},
				{Kind: region.Rescanned, Reason: "thaw"},
				{Kind: region.Rescanned, Reason: "request"},
				{Kind: region.Rescanned, Reason: "because I said so"},
			},
			want: map[string]float64{
				"cxlregiond_rescans_total{reason=startup}":         1,
				"cxlregiond_rescans_total{reason=overflow}":        1,
				"cxlregiond_rescans_total{reason=gap}":             2,
				"cxlregiond_rescans_total{reason=periodic}":        1,
				"cxlregiond_rescans_total{reason=thaw}":            1,
				"cxlregiond_rescans_total{reason=request}":         1,
				"cxlregiond_rescans_total{reason=other}":           1,
				"cxlregiond_uevent_resyncs_total{reason=overflow}": 1,
				"cxlregiond_uevent_resyncs_total{reason=gap}":      2,
			},
		},
		{
			name: "journal failures by what needed the journal",
			events: []region.Event{
				{Kind: region.JournalFailed, Reason: "delete", Err: errors.New("EIO")},
				{Kind: region.JournalFailed, Reason: "delete", Err: errors.New("EIO")},
				{Kind: region.JournalFailed, Reason: "generation", Err: errors.New("ENOSPC")},
				{Kind: region.JournalFailed, Reason: "region7", Err: errors.New("EIO")},
			},
			want: map[string]float64{
				"cxlregiond_journal_errors_total{operation=delete}":     2,
				"cxlregiond_journal_errors_total{operation=generation}": 1,
				"cxlregiond_journal_errors_total{operation=other}":      1,
			},
		},
		{
			name: "model events are left to the scrape-time collector",
			events: []region.Event{
				{Kind: region.RegionAdded, Region: region.RegionInfo{Name: "region0"}},
				{Kind: region.RegionRemoved, Region: region.RegionInfo{Name: "region0"}},
				{Kind: region.RootDecoderChanged, RootDecoder: region.RootDecoderInfo{Name: "decoder0.0", Frozen: true}},
			},
			want: map[string]float64{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Options{})
			ch := make(chan region.Event, len(tt.events))
			for _, ev := range tt.events {
				ch <- ev
			}
			close(ch)
			m.Follow(t.Context(), ch) // returns once ch is drained and closed
			if diff := cmp.Diff(tt.want, series(t, m.reg)); diff != "" {
				t.Errorf("series (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFollowStopsWithContext(t *testing.T) {
	m := New(Options{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Follow(ctx, make(chan region.Event)) // never closed
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not return after its context ended")
	}
}

func TestAttributeLabel(t *testing.T) {
	tests := []struct{ attr, want string }{
		{"bus/cxl/devices/decoder0.0/delete_region", "delete_region"},
		{"bus/cxl/devices/decoder0.0/create_pmem_region", "create_pmem_region"},
		{"bus/cxl/devices/decoder3.1/create_ram_region", "create_ram_region"},
		{"bus/cxl/devices/region7/commit", "commit"},
		{"bus/cxl/devices/region7/target0", "target"},
		{"bus/cxl/devices/region7/target15", "target"},
		{"bus/cxl/devices/region7/uuid", "uuid"},
		{"bus/cxl/devices/region7/size", "size"},
		{"bus/cxl/devices/region7/interleave_ways", "interleave_ways"},
		{"bus/cxl/devices/region7/interleave_granularity", "interleave_granularity"},
		{"bus/cxl/devices/decoder2.0/dpa_size", "dpa_size"},
		{"bus/cxl/devices/decoder2.0/mode", "mode"},
		{sysfs.RegionBindPath, "bind"},
		{sysfs.RegionUnbindPath, "unbind"},
		{"delete_region", "delete_region"},
		{"bus/cxl/devices/region7/targetx", labelOther},
		{"bus/cxl/devices/region7/target1x", labelOther},
		{"bus/cxl/devices/region7/region7", labelOther},
		{"../../etc/passwd", labelOther},
		{"", labelOther},
	}
	for _, tt := range tests {
		if got := attributeLabel(tt.attr); got != tt.want {
			t.Errorf("attributeLabel(%q) = %q, want %q", tt.attr, got, tt.want)
		}
	}
}

func TestObserveWrite(t *testing.T) {
	tests := []struct {
		name       string
		attr       string
		err        error
		d          time.Duration
		wantResult string
		wantAttr   string
	}{
		{"ok", "bus/cxl/devices/region0/commit", nil, 3 * time.Millisecond, "ok", "commit"},
		{"sysfs write error keeps the errno", "bus/cxl/devices/decoder0.0/delete_region",
			&sysfs.WriteError{Attr: "bus/cxl/devices/decoder0.0/delete_region", Value: "region0", Err: unix.EBUSY},
			time.Millisecond, "EBUSY", "delete_region"},
		{"wrapped path error", "bus/cxl/devices/region0/target2",
			fmt.Errorf("attach: %w", &fs.PathError{Op: "write", Path: "x", Err: unix.ENXIO}),
			time.Millisecond, "ENXIO", "target"},
		{"bind ENODEV", sysfs.RegionBindPath, unix.ENODEV, time.Millisecond, "ENODEV", "bind"},
		{"no errno", "bus/cxl/devices/region0/size", errors.New("short write"), time.Millisecond, "error", "size"},
		{"errno outside the table", "bus/cxl/devices/region0/size", unix.Errno(9999), time.Millisecond, "error", "size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Options{})
			m.ObserveWrite(tt.attr, tt.d, tt.err)
			want := map[string]float64{
				"cxlregiond_sysfs_writes_total{attribute=" + tt.wantAttr + ",result=" + tt.wantResult + "}": 1,
				"cxlregiond_sysfs_write_duration_seconds_count{attribute=" + tt.wantAttr + "}":              1,
				"cxlregiond_sysfs_write_duration_seconds_sum{attribute=" + tt.wantAttr + "}":                tt.d.Seconds(),
			}
			if diff := cmp.Diff(want, series(t, m.reg)); diff != "" {
				t.Errorf("series (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGuard(t *testing.T) {
	tests := []struct {
		name         string
		kind, result string
		want         string
	}{
		{"delete allowed", guard.KindDelete.String(), guard.ResultAllowed, "kind=delete_region,result=allowed"},
		{"create waited", guard.KindCreate.String(), guard.ResultWaited, "kind=create_region,result=waited"},
		{"region driver passed", guard.KindRegionDriver.String(), guard.ResultPassed, "kind=cxl_region_driver,result=passed"},
		{"acpi refused", guard.KindACPIDriver.String(), guard.ResultRefused, "kind=cxl_acpi_driver,result=refused"},
		{"port", guard.KindPortDriver.String(), guard.ResultAllowed, "kind=cxl_port_driver,result=allowed"},
		{"unknown kind", "/sys/bus/cxl/devices/decoder0.0/delete_region", guard.ResultAllowed, "kind=other,result=allowed"},
		{"unknown result", guard.KindDelete.String(), "it depends", "kind=delete_region,result=other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Options{})
			m.ObserveGuard(tt.kind, tt.result)
			m.ObserveGuard(tt.kind, tt.result)
			want := map[string]float64{"cxlregiond_guard_opens_total{" + tt.want + "}": 2}
			if diff := cmp.Diff(want, series(t, m.reg)); diff != "" {
				t.Errorf("series (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGuardActive(t *testing.T) {
	m := New(Options{})
	for _, active := range []bool{true, false, true} {
		m.SetGuardActive(active)
		want := 0.0
		if active {
			want = 1
		}
		if got := testutil.ToFloat64(m.guardActive); got != want {
			t.Errorf("after SetGuardActive(%v): guard_active = %v, want %v", active, got, want)
		}
	}
}

func TestBuildInfo(t *testing.T) {
	tests := []struct{ version, want string }{
		{"v1.2.3", "v1.2.3"},
		{"", "unknown"},
	}
	for _, tt := range tests {
		m := New(Options{Version: tt.version})
		want := fmt.Sprintf(`# HELP cxlregiond_build_info Always 1; the labels say which build runs.
# TYPE cxlregiond_build_info gauge
cxlregiond_build_info{goversion=%q,version=%q} 1
`, goVersion(t), tt.want)
		if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "cxlregiond_build_info"); err != nil {
			t.Errorf("version %q: %v", tt.version, err)
		}
	}
}

// goVersion reads the Go collector's go_info, so the test does not restate
// how New finds the version.
func goVersion(t *testing.T) string {
	t.Helper()
	mfs, err := New(Options{}).reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "go_info" {
			return mf.GetMetric()[0].GetLabel()[0].GetValue()
		}
	}
	t.Fatal("no go_info: the Go collector is not registered")
	return ""
}

// TestConcurrentObservers feeds every input from many goroutines while
// scrapes run; under -race it proves the inputs may be called from the
// engine's, the lock's and the guard's goroutines at once.
func TestConcurrentObservers(t *testing.T) {
	src := &fakeSource{}
	src.set(
		[]region.RootDecoderInfo{{Name: "decoder0.0"}},
		[]region.RegionInfo{{Name: "region0", RootDecoder: "decoder0.0", Type: "pmem", State: region.StateEnabled}},
	)
	m := New(Options{Source: src})
	const workers, each = 8, 200
	events := make(chan region.Event)
	ctx, cancel := context.WithCancel(t.Context())
	var follow sync.WaitGroup
	follow.Go(func() { m.Follow(ctx, events) })

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				m.ObserveWrite("bus/cxl/devices/region0/commit", time.Microsecond, nil)
				m.ObserveGuard(guard.KindDelete.String(), guard.ResultAllowed)
				m.SetGuardActive(true)
				events <- opDone("delete", region.ResultOK, time.Millisecond, true)
			}
		})
		wg.Go(func() {
			for range each / 10 {
				if _, err := m.reg.Gather(); err != nil {
					t.Errorf("gather: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	cancel()
	follow.Wait()

	got := series(t, m.reg)
	for _, name := range []string{
		"cxlregiond_sysfs_writes_total{attribute=commit,result=ok}",
		"cxlregiond_guard_opens_total{kind=delete_region,result=allowed}",
		"cxlregiond_operations_total{operation=delete,result=ok}",
		"cxlregiond_duplicate_deletes_suppressed_total{}",
	} {
		if got[name] != workers*each {
			t.Errorf("%s = %v, want %d", name, got[name], workers*each)
		}
	}
}
