package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/cxlsim"
	"github.com/cxlregion/cxlregiond/internal/guard"
	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/metrics"
	"github.com/cxlregion/cxlregiond/internal/region"
	"github.com/cxlregion/cxlregiond/internal/service"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
	"github.com/cxlregion/cxlregiond/internal/uevent"
)

// runDaemon runs the daemon until serveCtx ends (SIGTERM), then stops it:
// it stops accepting requests, lets running operations finish (or roll
// back), and stops the engine last.
func runDaemon(serveCtx context.Context, o *daemonOptions, base settings, flagsSet map[string]bool) error {
	d, err := newDaemon(o, base, flagsSet, os.Stderr)
	if err != nil {
		return err
	}
	return d.run(serveCtx)
}

// cxlregiond is the daemon's running parts. start brings them up in this
// order, each on top of the ones before it:
//
//  1. backend: sysfs and the uevent socket, or the simulator
//  2. engine: metrics, the writer registry, the engine
//  3. bus: the D-Bus service and the system bus connection
//  4. engine goroutines: the engine's loop, the metrics follower and
//     listener, the config watcher (fsnotify and SIGHUP)
//  5. (the engine's first scan: wait until it is ready)
//  6. guard: the fanotify guard and the goroutine that keeps its marks on
//     the engine's root decoders
//  7. watchdog: stop serving if the engine dies; the systemd status line
//  8. serve: own the bus name and answer requests
//
// shutdown stops them in the reverse order, 8 to 1, written out step by
// step; each step waits for the goroutines it stops. Every goroutine the
// daemon starts is owned by one of its WaitGroups.
type cxlregiond struct {
	opts *daemonOptions
	base settings
	log  *slog.Logger
	live *liveSettings
	// trace, when set (tests), is told each start and stop step.
	trace func(step string)

	sim     *cxlsim.Kernel // nil on a real host
	fs      *sysfs.FS
	events  uevent.Source
	metrics *metrics.Metrics
	reg     *lock.Registry
	eng     *region.Engine
	svc     *service.Service
	conn    *dbus.Conn

	// engineCtx ends the engine's loop and the goroutines that follow it;
	// engineWG owns them. engineErr is valid once engineDone is closed.
	engineCtx  context.Context
	stopEngine context.CancelFunc
	engineWG   sync.WaitGroup
	engineDone chan struct{}
	engineErr  error
	hup        chan os.Signal

	// The guard, and the goroutine that keeps its marks (guardWG), which
	// stops before the guard closes.
	guard          *guard.Guard
	guardState     guardState
	stopGuardMarks context.CancelFunc
	guardWG        sync.WaitGroup

	// serveCtx ends serving: SIGTERM, or the watchdog when the engine
	// dies. serveWG owns the watchdog and the status line.
	serveCtx    context.Context
	stopServing context.CancelFunc
	serveWG     sync.WaitGroup
}

// newDaemon reads the settings; nothing is started yet.
func newDaemon(o *daemonOptions, base settings, flagsSet map[string]bool, logTo io.Writer) (*cxlregiond, error) {
	level := new(slog.LevelVar)
	level.Set(base.LogLevel)
	log := newLogger(logTo, level)
	s, err := loadSettings(o.configFile, o.configOptional, base, flagsSet)
	if err != nil {
		return nil, err
	}
	level.Set(s.LogLevel)
	live := &liveSettings{path: o.configFile, optional: o.configOptional, flags: flagsSet, level: level, log: log,
		metricsAddr: make(chan string, 1), cur: s}
	return &cxlregiond{opts: o, base: base, log: log, live: live}, nil
}

func (d *cxlregiond) step(name string) {
	if d.trace != nil {
		d.trace(name)
	}
}

// run starts the daemon, serves until ctx ends or the engine dies, and
// shuts down whatever started, also when a start step failed.
func (d *cxlregiond) run(ctx context.Context) (err error) {
	defer func() { err = errors.Join(err, d.shutdown()) }()
	if err := d.start(ctx); err != nil || d.serveCtx.Err() != nil {
		return err
	}
	d.step("start serve")
	err = d.svc.Serve(d.serveCtx, d.conn, func() {
		notifyReady(statusLine(d.eng, len(d.eng.Regions()), d.sim != nil, &d.guardState))
		d.log.Info("ready", "bus_name", api.BusName, "version", api.FullVersion(), "simulated", d.sim != nil,
			"guard", d.guardState.active(), "root_decoders", len(d.eng.RootDecoders()), "regions", len(d.eng.Regions()))
		d.step("ready")
	})
	return err
}

// start runs start steps 1 to 7 (see cxlregiond). serveCtx derives from ctx;
// when ctx ends, or the engine dies, before the engine is ready, start
// returns nil with d.serveCtx done.
func (d *cxlregiond) start(ctx context.Context) error {
	o, s, log := d.opts, d.live.get(), d.log
	d.serveCtx, d.stopServing = context.WithCancel(ctx)
	notifyStatus("starting: scanning sysfs")

	d.step("start backend")
	fs, events, sim, err := openBackend(o, log)
	if err != nil {
		return err
	}
	d.fs, d.events, d.sim = fs, events, sim

	d.step("start engine")
	d.metrics = metrics.New(metrics.Options{Version: api.FullVersion(), Logger: log})
	d.reg, err = lock.NewRegistry(fs, o.lockDir, lock.WithLogger(log), lock.WithWriteObserver(d.metrics.ObserveWrite))
	if err != nil {
		return err
	}
	d.eng, err = region.New(region.Config{
		FS: fs, Writers: d.reg, Events: events, StateDir: o.stateDir, BootID: bootID(log),
		SettleWindow: s.SettleWindow, BoundQuiet: s.BoundQuiet, RescanInterval: s.RescanInterval,
		DefaultTimeout: s.DefaultTimeout, OnSubscriberOverflow: d.metrics.ObserveSubscriberResync, Logger: log,
	})
	if err != nil {
		return err
	}
	if err := d.metrics.SetSource(d.eng); err != nil {
		return err
	}
	d.live.onSettle, d.live.onRescan = d.eng.SetSettle, d.eng.SetRescanInterval // before live.watch starts

	d.step("start bus")
	d.svc, err = service.New(service.Config{
		Engine: d.eng, Version: api.FullVersion(), Simulated: sim != nil, LockDirectory: d.reg.Dir(),
		GuardActive: d.guardState.active, GuardQueueDepth: d.guardState.queueDepth, GuardChanged: d.guardState.subscribe(),
		DefaultTimeout: d.live.defaultTimeout, Logger: log,
	})
	if err != nil {
		return err
	}
	d.conn, err = dbus.ConnectSystemBus(dbus.WithHandler(d.svc))
	if err != nil {
		return fmt.Errorf("cannot connect to the system bus (%s): %w", busAddress(), err)
	}

	d.step("start engine goroutines")
	d.engineCtx, d.stopEngine = context.WithCancel(context.Background())
	d.engineDone = make(chan struct{})
	d.engineWG.Go(func() {
		defer close(d.engineDone)
		d.engineErr = d.eng.Run(d.engineCtx)
	})
	metricEvents, unsubscribe := d.eng.Subscribe(d.engineCtx)
	d.engineWG.Go(func() {
		defer unsubscribe()
		d.metrics.Follow(d.engineCtx, metricEvents)
	})
	metricsLn, err := listenMetrics(d.engineCtx, s.MetricsListen) // before READY: refuse to start without it
	if err != nil {
		return err
	}
	d.engineWG.Go(func() { serveMetrics(d.engineCtx, d.metrics, metricsLn, d.live.metricsAddr, log) })
	d.hup = make(chan os.Signal, 1)
	signal.Notify(d.hup, syscall.SIGHUP)
	d.engineWG.Go(func() { d.live.watch(d.engineCtx, d.base, d.hup) })

	select {
	case <-d.eng.Ready():
	case <-d.engineDone:
		d.stopServing() // shutdown reports the engine's error
		return nil
	case <-d.serveCtx.Done():
		return nil
	}

	d.step("start guard")
	if err := d.startGuard(); err != nil {
		return err
	}

	d.step("start watchdog")
	// If the engine dies while serving, stop serving: a daemon that cannot
	// see sysfs must not accept requests.
	d.serveWG.Go(func() {
		select {
		case <-d.engineDone:
			if d.engineErr != nil {
				log.Error("engine stopped; shutting down", "err", d.engineErr)
			}
			d.stopServing()
		case <-d.serveCtx.Done():
		}
	})
	guardChanged := d.guardState.subscribe()
	statusEvents, unsubscribeStatus := d.eng.Subscribe(d.serveCtx)
	d.serveWG.Go(func() {
		defer unsubscribeStatus()
		followStatus(d.serveCtx, statusEvents, guardChanged, d.eng, sim != nil, &d.guardState)
	})
	return nil
}

// shutdown stops what start started, in the reverse order of cxlregiond's
// list; a part that never started is skipped. It returns the engine's
// error if the engine died.
func (d *cxlregiond) shutdown() error {
	// 8. serve: Serve has returned (running operations finished, the bus
	// name released).
	d.step("stop serve")
	notifyStopping()
	if d.stopServing != nil {
		d.stopServing()
	}

	// 7. watchdog and status line.
	d.step("stop watchdog")
	d.serveWG.Wait()

	// 6. guard: its marks' follower first, then the guard, which releases
	// the openers it holds. Before the engine: the guard waits on the
	// engine's settle state and follows its root decoders.
	d.step("stop guard")
	if d.stopGuardMarks != nil {
		d.stopGuardMarks()
	}
	d.guardWG.Wait()
	if d.guard != nil {
		d.guardState.set(nil)
		if err := d.guard.Close(); err != nil {
			d.log.Warn("guard: close", "err", err)
		}
	}

	// 4. engine goroutines: the loop, metrics, config watcher. An engine
	// that ended before this step died, and that is the daemon's failure.
	d.step("stop engine goroutines")
	var died error
	if d.engineDone != nil {
		select {
		case <-d.engineDone:
			died = fmt.Errorf("engine: %w", d.engineErr)
		default:
		}
	}
	if d.stopEngine != nil {
		d.stopEngine()
	}
	d.engineWG.Wait()
	if d.hup != nil {
		signal.Stop(d.hup)
	}

	// 3. bus.
	d.step("stop bus")
	if d.conn != nil {
		if err := d.conn.Close(); err != nil {
			d.log.Debug("close bus connection", "err", err)
		}
	}

	// 2. engine, registry and metrics hold nothing to close.
	// 1. backend.
	d.step("stop backend")
	if d.events != nil {
		if err := d.events.Close(); err != nil {
			d.log.Debug("close uevent source", "err", err)
		}
	}
	if d.sim != nil {
		if err := d.sim.Close(); err != nil {
			d.log.Warn("close simulator", "err", err)
		}
	}

	if died != nil {
		return died
	}
	d.log.Info("stopped")
	return nil
}

// simEventBuffer is the simulated uevent socket's queue: deep enough for a
// burst of region churn, small enough that an overflow is exercised the way
// the real socket's is.
const simEventBuffer = 4096

// openBackend opens sysfs and the uevent socket, or the simulator.
func openBackend(o *daemonOptions, log *slog.Logger) (*sysfs.FS, uevent.Source, *cxlsim.Kernel, error) {
	if o.simulate != "" {
		k, err := newSimulator(o)
		if err != nil {
			return nil, nil, nil, err
		}
		log.Info("running on the simulated kernel", "topology", o.simulate, "profile", o.simProfile, "log", o.simLog, "state", o.simState)
		return sysfs.New(k), k.Subscribe(simEventBuffer), k, nil
	}
	fs := sysfs.Open(o.sysfsRoot)
	if _, err := fs.Backend().ReadDir("bus/cxl/devices"); err != nil {
		return nil, nil, nil, fmt.Errorf("no CXL bus at %s/bus/cxl (%v): is the cxl_acpi module loaded on a host with CXL memory? "+
			"To try the daemon without hardware, run it with --simulate", o.sysfsRoot, err)
	}
	conn, err := uevent.Listen(uevent.WithLogger(log))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cannot listen to kernel uevents (needed to see teardowns): %w", err)
	}
	return fs, conn, nil, nil
}

func busAddress() string {
	if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
		return "DBUS_SYSTEM_BUS_ADDRESS=" + a
	}
	return "unix:path=/var/run/dbus/system_bus_socket"
}

// guardState is the guard as the D-Bus GuardActive and GuardQueue
// properties and the status line see it, and tells them when it changes.
type guardState struct {
	mu sync.Mutex // guards g, set once the guard has started, and subs
	g  *guard.Guard
	// subs each get a value, one slot, never waited for, whenever the
	// guard's Active or QueueDepth may have changed (subscribe).
	subs []chan struct{}
}

func (s *guardState) set(g *guard.Guard) {
	s.mu.Lock()
	s.g = g
	s.mu.Unlock()
	s.changed()
}

// subscribe returns a channel that gets a value whenever the guard's
// state may have changed; a reader that has not taken the last one gets
// no second.
func (s *guardState) subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, ch)
	return ch
}

// changed tells the subscribers. The guard calls it (NotifyChanges) with
// its own locks held: it never blocks, and s.mu is never held while
// waiting for the guard.
func (s *guardState) changed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (s *guardState) queueDepth() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.g == nil {
		return 0
	}
	return s.g.QueueDepth()
}

func (s *guardState) active() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.g != nil && s.g.Active()
}
