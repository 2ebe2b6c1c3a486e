package cxlsim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/uevent"
)

// readUevents parses a raw uevent capture and keeps what the netlink
// listener keeps (SUBSYSTEM cxl, nd, dax; the cxl_acpi platform device).
func readUevents(t testing.TB, profile, phase string) []uevent.Event {
	t.Helper()
	b, err := os.ReadFile("testdata/" + profile + "/uevents/" + phase + ".txt")
	if err != nil {
		t.Fatal(err)
	}
	var out []uevent.Event
	for _, block := range strings.Split(string(b), "\n\n") {
		var e uevent.Event
		for _, l := range strings.Split(block, "\n") {
			key, v, ok := strings.Cut(l, "=")
			if !ok {
				continue
			}
			switch key {
			case "ACTION":
				e.Action = uevent.Action(v)
			case "DEVPATH":
				e.DevPath = v
			case "SUBSYSTEM":
				e.Subsystem = v
			case "DEVTYPE":
				e.DevType = v
			case "DRIVER":
				e.Driver = v
			case "SEQNUM":
				e.Seqnum, _ = strconv.ParseUint(v, 10, 64)
			}
		}
		if e.Action == "" {
			continue
		}
		if keep(&device{subsystem: e.Subsystem, name: e.Name()}) {
			out = append(out, e)
		}
	}
	return out
}

// drain receives what the kernel sent so far.
func drain(t testing.TB, s uevent.Source) []uevent.Event {
	t.Helper()
	var out []uevent.Event
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		e, err := s.Receive(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
}

func evString(e uevent.Event) string {
	return fmt.Sprintf("%s@%s %s/%s %s", e.Action, e.DevPath, e.Subsystem, e.DevType, e.Driver)
}

// normalize drops SEQNUMs and sorts each run of nd seed removals
// (namespace, btt, pfn, dax below an nd region): libnvdimm removes them
// in an order the captures show varying.
func normalize(evs []uevent.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = evString(e)
	}
	isSeedRemove := func(e uevent.Event) bool {
		return e.Action == uevent.Remove && e.Subsystem == "nd" && strings.Contains(e.DevPath, "/ndbus0/region") && strings.Count(e.DevPath[strings.Index(e.DevPath, "/ndbus0/"):], "/") == 3
	}
	for i := 0; i < len(evs); {
		j := i
		for j < len(evs) && isSeedRemove(evs[j]) {
			j++
		}
		if j > i {
			slices.Sort(out[i:j])
			i = j
		} else {
			i++
		}
	}
	return out
}

func split(evs []uevent.Event, subsystem string) []string {
	var out []string
	for _, s := range normalize(evs) {
		if strings.Contains(s, " "+subsystem+"/") {
			out = append(out, s)
		}
	}
	return out
}

func isSubsequence(sub, seq []string) bool {
	i := 0
	for _, s := range seq {
		if i < len(sub) && sub[i] == s {
			i++
		}
	}
	return i == len(sub)
}

// TestUeventsMatchCaptures replays each captured phase on the QEMU
// machine and compares the uevents (action, devpath, subsystem, devtype,
// driver; not SEQNUM values) with the kernel's.
func TestUeventsMatchCaptures(t *testing.T) {
	for _, profile := range []string{Profile61, Profile612} {
		t.Run(profile, func(t *testing.T) {
			k := newQEMU(t, profile)
			sub := k.Subscribe(1000)
			defer sub.Close()
			w := readLifecycle(t, "testdata/"+profile+"/lifecycle.log")
			apply := func(ws ...lifecycleWrite) {
				t.Helper()
				for _, x := range ws {
					mustWrite(t, k, x.path, x.value, x.result)
				}
			}
			phase := func(name string, got []uevent.Event, exact bool) {
				t.Helper()
				want := readUevents(t, profile, name)
				t.Logf("%s: %d captured, %d model events", name, len(want), len(got))
				for i := 1; i < len(got); i++ {
					if got[i].Seqnum <= got[i-1].Seqnum {
						t.Errorf("%s: SEQNUM not increasing: %d after %d", name, got[i].Seqnum, got[i-1].Seqnum)
					}
				}
				if exact {
					if d := diffLines(normalize(want), normalize(got)); d != "" {
						t.Errorf("%s: (-capture +model)\n%s", name, d)
					}
					return
				}
				// The nd side is registered asynchronously: compare the cxl
				// and nd streams each in order.
				for _, ss := range []string{"cxl", "nd", "platform"} {
					if d := diffLines(split(want, ss), split(got, ss)); d != "" {
						t.Errorf("%s (%s events): (-capture +model)\n%s", name, ss, d)
					}
				}
			}

			apply(w[:10]...)
			waitRegistered(t, k, "region0")
			phase("02-create-to-bind", drain(t, sub), profile == Profile612)
			apply(w[10])
			phase("03-unbind", drain(t, sub), true)
			apply(w[11:14]...)
			phase("04-delete", drain(t, sub), true)

			last := 0
			for i, x := range w {
				if strings.HasSuffix(x.path, "region0/uuid") {
					last = i
				}
			}
			mustWrite(t, k, dev+"decoder0.0/create_pmem_region", "region0", "OK")
			apply(w[last : len(w)-2]...)
			waitRegistered(t, k, "region0")
			drain(t, sub)
			apply(w[len(w)-2])
			phase("05-acpi-unbind-with-bound-region", drain(t, sub), true)

			// Rebind: the model brings port1 and its decoder back at once
			// (6.12 failed that probe) and the endpoint after the rebind
			// delay (6.1 added and removed it): every captured event but
			// those transient endpoint ones appears, in the captured order.
			apply(w[len(w)-1])
			got := normalize(drain(t, sub))
			want := slices.DeleteFunc(normalize(readUevents(t, profile, "06-acpi-rebind")), func(s string) bool {
				return strings.Contains(s, "/endpoint2 ")
			})
			if !isSubsequence(want, got) {
				t.Errorf("06-acpi-rebind: captured events %q\nnot in order in the model's %q", want, got)
			}
		})
	}
}

func diffLines(want, got []string) string {
	if slices.Equal(want, got) {
		return ""
	}
	var b strings.Builder
	for i := 0; i < max(len(want), len(got)); i++ {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		mark := " "
		if w != g {
			mark = "!"
		}
		fmt.Fprintf(&b, "%s %-90s | %s\n", mark, w, g)
	}
	return b.String()
}

// TestSubscriptionOverflow: a listener whose buffer overflows gets
// ErrResync once, then the events still queued and the following ones.
func TestSubscriptionOverflow(t *testing.T) {
	k := newQEMU(t, Profile612)
	small := k.Subscribe(2)
	big := k.Subscribe(100)
	defer small.Close()
	defer big.Close()
	mustWrite(t, k, dev+"decoder0.0/create_pmem_region", "region0", "OK")
	mustWrite(t, k, dev+"decoder0.0/delete_region", "region0", "OK")
	mustWrite(t, k, dev+"decoder0.0/create_pmem_region", "region0", "OK")
	ctx := context.Background()
	if _, err := small.Receive(ctx); !errors.Is(err, uevent.ErrResync) {
		t.Fatalf("first Receive after overflow: %v, want ErrResync", err)
	}
	e1, err1 := small.Receive(ctx)
	e2, err2 := small.Receive(ctx)
	if err1 != nil || err2 != nil || e1.Action != uevent.Add || e2.Action != uevent.Remove {
		t.Fatalf("queued events: %v %v %v %v", e1, err1, e2, err2)
	}
	all := drain(t, big)
	if len(all) != 3 {
		t.Fatalf("big listener got %d events, want 3", len(all))
	}
	// Dropped events leave a SEQNUM gap.
	k.DropEvents(1)
	mustWrite(t, k, dev+"decoder0.0/delete_region", "region0", "OK")
	mustWrite(t, k, dev+"decoder0.0/create_pmem_region", "region0", "OK")
	next := drain(t, big)
	if len(next) != 1 || next[0].Seqnum != all[2].Seqnum+2 {
		t.Fatalf("after DropEvents(1): %+v, want one event with SEQNUM %d", next, all[2].Seqnum+2)
	}
	// Receive honours ctx and Close.
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := big.Receive(ctx2); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Receive: %v", err)
	}
	done := make(chan error)
	go func() { _, err := big.Receive(ctx); done <- err }()
	time.Sleep(5 * time.Millisecond)
	big.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Receive after Close: %v", err)
	}
}
