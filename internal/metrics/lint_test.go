package metrics

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/guard"
	"github.com/cxlregion/cxlregiond/internal/region"
	"github.com/cxlregion/cxlregiond/internal/uevent"
)

// busyMetrics returns a registry in which every family has series.
func busyMetrics(t *testing.T) *Metrics {
	t.Helper()
	src := &fakeSource{}
	src.set(
		[]region.RootDecoderInfo{{Name: "decoder0.0", Frozen: true, QueueDepth: 1}},
		[]region.RegionInfo{reg("region0", "decoder0.0", "pmem", region.StateEnabled)},
	)
	m := New(Options{Version: "test", Source: src})
	m.ObserveWrite("bus/cxl/devices/decoder0.0/delete_region", time.Millisecond, unix.EBUSY)
	m.ObserveGuard(guard.KindDelete.String(), guard.ResultWaited)
	m.SetGuardActive(true)
	for _, ev := range []region.Event{
		opDone("delete", region.ResultOK, time.Second, true),
		{Kind: region.UeventReceived, Uevent: uevent.Event{Action: uevent.Remove}},
		{Kind: region.Rescanned, Reason: "overflow"},
	} {
		m.observeEvent(ev)
	}
	return m
}

// TestLint runs promlint over the whole registry: names, units, _total on
// counters and help strings. Mutation: rename operations_total to
// operations and this goes red.
func TestLint(t *testing.T) {
	problems, err := testutil.GatherAndLint(busyMetrics(t).reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestNamesFollowTheConvention checks what promlint does not: every metric
// of ours is cxlregiond_<what>[_<unit>], every duration is in seconds.
func TestNamesFollowTheConvention(t *testing.T) {
	mfs, err := busyMetrics(t).reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	valid := regexp.MustCompile(`^cxlregiond_[a-z][a-z0-9_]*[a-z0-9]$`)
	var ours int
	for _, mf := range mfs {
		name := mf.GetName()
		switch {
		case strings.HasPrefix(name, "go_"), strings.HasPrefix(name, "process_"), strings.HasPrefix(name, "promhttp_"):
			continue
		case !valid.MatchString(name):
			t.Errorf("metric %q does not follow cxlregiond_<what>_<unit>", name)
		case strings.Contains(name, "duration") && !strings.HasSuffix(name, "_seconds"):
			t.Errorf("metric %q is a duration not in seconds", name)
		}
		ours++
	}
	// build_info, regions, writer_frozen, writer_queue_depth, operations,
	// operation_duration, duplicate_deletes, sysfs_writes,
	// sysfs_write_duration, uevents, uevent_resyncs, rescans,
	// journal_errors, guard_opens, guard_active, event_subscriber_resyncs,
	// online_memory (memdev_capacity only from a source that has capacity).
	if ours != 17 {
		t.Errorf("found %d cxlregiond metrics, want 17 (the package comment's list)", ours)
	}
}

// TestCardinalityStaysBounded feeds a thousand distinct region names, paths,
// error messages and free-form strings into every input and checks that no
// family grows past a small bound. Mutation: make attributeLabel return
// path.Base(attr) unchecked, or let Follow use Operation.Target as a label,
// and this goes red.
func TestCardinalityStaysBounded(t *testing.T) {
	const n = 1000
	var roots []region.RootDecoderInfo
	for i := range 4 {
		roots = append(roots, region.RootDecoderInfo{Name: fmt.Sprintf("decoder%d.0", i), QueueDepth: i})
	}
	roots = append(roots, region.RootDecoderInfo{Name: "not a decoder"})
	var regions []region.RegionInfo
	for i := range n {
		regions = append(regions, region.RegionInfo{
			Name: fmt.Sprintf("region%d", i), Generation: uint64(i), UUID: fmt.Sprintf("%08x-0000-0000-0000-000000000000", i),
			RootDecoder: roots[i%len(roots)].Name,
			Type:        []string{"pmem", "ram", fmt.Sprintf("type%d", i)}[i%3],
			State:       []region.State{region.StateEnabled, region.StateCommitted, region.State(fmt.Sprintf("s%d", i))}[i%3],
		})
	}
	src := &fakeSource{}
	src.set(roots, regions)
	m := New(Options{Source: src})

	errnos := []unix.Errno{unix.EBUSY, unix.ENXIO, unix.ENODEV, unix.EINVAL, unix.ENOENT, unix.EINTR}
	ops := []string{"create", "delete", "enable", "disable"}
	for i := range n {
		name := fmt.Sprintf("region%d", i)
		var err error
		switch i % 3 {
		case 0:
			err = fmt.Errorf("write %q to %s: %w", name, name, errnos[i%len(errnos)])
		case 1:
			err = fmt.Errorf("region %s generation %d: something odd #%d", name, i, i)
		}
		attrs := []string{
			fmt.Sprintf("bus/cxl/devices/%s/target%d", name, i%16),
			fmt.Sprintf("bus/cxl/devices/%s/attr%d", name, i),
			fmt.Sprintf("bus/cxl/devices/decoder%d.%d/delete_region", i, i),
		}
		m.ObserveWrite(attrs[i%len(attrs)], time.Duration(i)*time.Microsecond, err)
		m.ObserveGuard([]string{guard.KindDelete.String(), fmt.Sprintf("/sys/bus/cxl/devices/decoder%d.0/delete_region", i), name}[i%3],
			[]string{guard.ResultRefused, fmt.Sprintf("result %d", i)}[i%2])

		res := []region.Result{region.ResultOK, region.ResultBusy, region.Result("failed on " + name)}
		m.observeEvent(region.Event{Kind: region.OperationDone, Operation: region.Operation{
			Op: []string{ops[i%len(ops)], name}[i%2], Target: name, Result: res[i%3],
			Duration: time.Millisecond, Joined: i%5 == 0, Err: errors.New(name),
		}})
		m.observeEvent(region.Event{Kind: region.UeventReceived, Uevent: uevent.Event{
			Action: []uevent.Action{uevent.Add, uevent.Action(name)}[i%2], DevPath: "/devices/platform/ACPI0017:00/root0/" + name,
			Seqnum: uint64(i),
		}})
		m.observeEvent(region.Event{Kind: region.Rescanned, Reason: []string{"gap", "overflow", "periodic", "lost " + name}[i%4]})
		m.observeEvent(region.Event{Kind: region.JournalFailed, Reason: []string{"delete", "write " + name}[i%2], Err: errors.New(name)})
	}

	// Each bound is the product of the label's fixed sets (plus "other"),
	// far below the thousand distinct inputs.
	bounds := map[string]int{
		"cxlregiond_build_info":                         1,
		"cxlregiond_regions":                            5 * (4 + 1) * (2 + 1), // 4 decoders + other
		"cxlregiond_writer_frozen":                      5,
		"cxlregiond_writer_queue_depth":                 5,
		"cxlregiond_online_memory_bytes":                5 * (2 + 1),
		"cxlregiond_operations_total":                   (4 + 1) * (9 + 1),
		"cxlregiond_operation_duration_seconds":         4 + 1,
		"cxlregiond_duplicate_deletes_suppressed_total": 1,
		"cxlregiond_sysfs_writes_total":                 (14 + 1) * (len(errnos) + 2),
		"cxlregiond_sysfs_write_duration_seconds":       14 + 1,
		"cxlregiond_uevents_total":                      8 + 1,
		"cxlregiond_uevent_resyncs_total":               2,
		"cxlregiond_rescans_total":                      6 + 1,
		"cxlregiond_journal_errors_total":               5 + 1,
		"cxlregiond_guard_opens_total":                  (7 + 1) * (4 + 1),
		"cxlregiond_guard_active":                       1,
		"cxlregiond_event_subscriber_resyncs_total":     1,
	}
	regionName := regexp.MustCompile(`region[0-9]`)
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, namespace+"_") {
			continue
		}
		bound, ok := bounds[name]
		if !ok {
			t.Errorf("%s: no cardinality bound in this test", name)
			continue
		}
		if got := len(mf.GetMetric()); got > bound {
			t.Errorf("%s has %d series after %d distinct inputs, bound %d", name, got, n, bound)
		}
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				if regionName.MatchString(lp.GetValue()) {
					t.Errorf("%s{%s=%q}: a region name leaked into a label", name, lp.GetName(), lp.GetValue())
				}
			}
		}
	}
}
