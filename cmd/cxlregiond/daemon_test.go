package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cxlregion/cxlregiond/internal/guard"
	"github.com/cxlregion/cxlregiond/internal/service/dbustest"
	"github.com/cxlregion/cxlregiond/internal/sysfs/sysfstest"
)

// stepRecorder collects a daemon's start and stop steps.
type stepRecorder struct {
	mu    sync.Mutex
	steps []string
	ready chan struct{}
}

func newStepRecorder() *stepRecorder { return &stepRecorder{ready: make(chan struct{})} }

func (r *stepRecorder) add(step string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, step)
	if step == "ready" {
		close(r.ready)
	}
}

func (r *stepRecorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.steps)
}

// testDaemon is a daemon on the simulator, with a config file (so the
// fsnotify watcher runs) and a metrics listener on a free port.
func testDaemon(t *testing.T, edit func(*daemonOptions)) (*cxlregiond, *stepRecorder) {
	t.Helper()
	dir := t.TempDir()
	config := filepath.Join(dir, "cxlregiond.conf")
	if err := os.WriteFile(config, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	o := &daemonOptions{
		configFile: config, sysfsRoot: "/sys", guard: "auto",
		stateDir: filepath.Join(dir, "state"), lockDir: filepath.Join(dir, "lock"),
		simulate: "default", simProfile: "6.12",
		simDeleteDelay: time.Millisecond, simRegisterDelay: time.Millisecond, simAssembleTime: time.Millisecond,
	}
	if edit != nil {
		edit(o)
	}
	base := settings{
		LogLevel: slog.LevelWarn, SettleWindow: 10 * time.Millisecond, BoundQuiet: time.Millisecond,
		DefaultTimeout: 10 * time.Second, MetricsListen: "127.0.0.1:0",
	}
	d, err := newDaemon(o, base, map[string]bool{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rec := newStepRecorder()
	d.trace = rec.add
	return d, rec
}

// The daemon starts and stops in the order its doc lists, and SIGTERM (the
// end of ctx) leaves no goroutine behind: on the simulator, and on a
// sysfs tree built from a 6.12 capture with the fanotify guard on (root
// only; CI runs as root), whose marks follower is one of the goroutines.
//
// Mutations: start any goroutine outside the daemon's WaitGroups (the old
// guard follower), or drop a Wait from shutdown → goleak reports it;
// stop the engine before the guard (the old defer order) → the step order
// differs.
func TestDaemonStopsInReverseOrderAndLeavesNoGoroutine(t *testing.T) {
	want := []string{
		"start backend", "start engine", "start bus", "start engine goroutines",
		"start guard", "start watchdog", "start serve", "ready",
		"stop serve", "stop watchdog", "stop guard", "stop engine goroutines", "stop bus", "stop backend",
	}
	tests := []struct {
		name    string
		edit    func(t *testing.T, o *daemonOptions)
		guardOn bool
	}{
		{name: "simulator"},
		{
			name: "captured sysfs, guard on",
			edit: func(t *testing.T, o *daemonOptions) {
				if os.Geteuid() != 0 {
					t.Skip("the guard needs root (fanotify)")
				}
				o.simulate, o.guard, o.sysfsRoot = "", "on", t.TempDir()
				if err := sysfstest.Build(o.sysfsRoot, "../../internal/sysfs/testdata/6.12/1-idle.txt"); err != nil {
					t.Fatal(err)
				}
			},
			guardOn: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dbustest.Start(t)
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

			d, rec := testDaemon(t, func(o *daemonOptions) {
				if tt.edit != nil {
					tt.edit(t, o)
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- d.run(ctx) }()
			select {
			case <-rec.ready:
			case err := <-errc:
				if errors.Is(err, guard.ErrUnsupported) {
					t.Skip(err)
				}
				t.Fatalf("daemon ended before it was ready: %v (steps %q)", err, rec.get())
			case <-time.After(30 * time.Second):
				t.Fatalf("daemon not ready after 30 s (steps %q)", rec.get())
			}
			if got := d.guardState.active(); got != tt.guardOn {
				t.Errorf("guard active = %v, want %v", got, tt.guardOn)
			}
			cancel()
			if err := <-errc; err != nil {
				t.Fatalf("run: %v", err)
			}
			if got := rec.get(); !slices.Equal(got, want) {
				t.Errorf("steps\n got %q\nwant %q", got, want)
			}
		})
	}
}

// A start that fails part way stops what it started, and nothing else
// stays running.
func TestDaemonFailedStartLeavesNoGoroutine(t *testing.T) {
	stop := []string{"stop serve", "stop watchdog", "stop guard", "stop engine goroutines", "stop bus", "stop backend"}
	tests := []struct {
		name  string
		bus   bool
		edit  func(*daemonOptions)
		steps []string
	}{
		{
			name:  "lock directory cannot be made",
			bus:   true,
			edit:  func(o *daemonOptions) { o.lockDir = "/dev/null/lock" },
			steps: append([]string{"start backend", "start engine"}, stop...),
		},
		{
			name:  "no system bus",
			edit:  nil,
			steps: append([]string{"start backend", "start engine", "start bus"}, stop...),
		},
		{
			name:  "guard on the simulator",
			bus:   true,
			edit:  func(o *daemonOptions) { o.guard = "on" },
			steps: append([]string{"start backend", "start engine", "start bus", "start engine goroutines", "start guard"}, stop...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.bus {
				dbustest.Start(t)
			} else {
				t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "nobus"))
			}
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			d, rec := testDaemon(t, tt.edit)
			if err := d.run(context.Background()); err == nil {
				t.Fatal("run succeeded")
			}
			if got := rec.get(); !slices.Equal(got, tt.steps) {
				t.Errorf("steps\n got %q\nwant %q", got, tt.steps)
			}
		})
	}
}
