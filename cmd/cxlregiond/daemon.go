package main

import (
	"context"
	"errors"
	"fmt"
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

// runDaemon wires the daemon and runs it until serveCtx ends (SIGTERM):
// then it stops accepting requests, lets running operations finish (or roll
// back), and stops the engine last.
func runDaemon(serveCtx context.Context, o *daemonOptions, base settings, flagsSet map[string]bool) error {
	level := new(slog.LevelVar)
	level.Set(base.LogLevel)
	log := newLogger(os.Stderr, level)
	s, err := loadSettings(o.configFile, o.configOptional, base, flagsSet)
	if err != nil {
		return err
	}
	level.Set(s.LogLevel)
	live := &liveSettings{path: o.configFile, optional: o.configOptional, flags: flagsSet, level: level, log: log,
		metricsAddr: make(chan string, 1), cur: s}
	notifyStatus("starting: scanning sysfs")

	fs, events, sim, err := openBackend(o, log)
	if err != nil {
		return err
	}
	if sim != nil {
		defer sim.Close()
	}
	defer events.Close()

	m := metrics.New(metrics.Options{Version: api.FullVersion(), Logger: log})
	reg, err := lock.NewRegistry(fs, o.lockDir, lock.WithLogger(log), lock.WithWriteObserver(m.ObserveWrite))
	if err != nil {
		return err
	}
	eng, err := region.New(region.Config{
		FS: fs, Writers: reg, Events: events, StateDir: o.stateDir,
		SettleWindow: s.SettleWindow, BoundQuiet: s.BoundQuiet, RescanInterval: s.RescanInterval,
		DefaultTimeout: s.DefaultTimeout, Logger: log,
	})
	if err != nil {
		return err
	}
	if err := m.SetSource(eng); err != nil {
		return err
	}
	live.onSettle, live.onRescan = eng.SetSettle, eng.SetRescanInterval // before live.watch starts

	var guardActive guardState
	svc, err := service.New(service.Config{
		Engine: eng, Version: api.FullVersion(), Simulated: sim != nil,
		GuardActive: guardActive.active, GuardQueueDepth: guardActive.queueDepth, DefaultTimeout: live.defaultTimeout, Logger: log,
	})
	if err != nil {
		return err
	}
	conn, err := dbus.ConnectSystemBus(dbus.WithHandler(svc))
	if err != nil {
		return fmt.Errorf("cannot connect to the system bus (%s): %w", busAddress(), err)
	}
	defer conn.Close()

	engineCtx, stopEngine := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopEngine() // before wg.Wait: the goroutines end with the engine
	engineDone := make(chan error, 1)
	wg.Go(func() { engineDone <- eng.Run(engineCtx) })
	metricEvents, unsubscribe := eng.Subscribe(engineCtx)
	defer unsubscribe()
	wg.Go(func() { m.Follow(engineCtx, metricEvents) })
	wg.Go(func() { serveMetrics(engineCtx, m, s.MetricsListen, live.metricsAddr, log) })
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	wg.Go(func() { live.watch(engineCtx, base, hup) })

	select {
	case <-eng.Ready():
	case err := <-engineDone:
		return fmt.Errorf("engine: %w", err)
	case <-serveCtx.Done():
		return nil
	}
	g, err := startGuard(engineCtx, o, sim != nil, reg, eng, m, log)
	if err != nil {
		return err
	}
	if g != nil {
		defer g.Close()
		guardActive.set(g)
	}
	m.SetGuardActive(g != nil && g.Active())

	// If the engine dies while serving, stop serving: a daemon that cannot
	// see sysfs must not accept requests.
	serveCtx, stopServing := context.WithCancel(serveCtx)
	defer stopServing()
	var engineErr error
	wg.Go(func() {
		select {
		case err := <-engineDone:
			if err != nil {
				engineErr = err
				log.Error("engine stopped; shutting down", "err", err)
			}
			stopServing()
		case <-engineCtx.Done():
		}
	})
	wg.Go(func() { followStatus(serveCtx, eng, sim != nil, &guardActive) })
	err = svc.Serve(serveCtx, conn, func() {
		notifyReady(statusLine(eng, sim != nil, &guardActive))
		log.Info("ready", "bus_name", api.BusName, "version", api.FullVersion(), "simulated", sim != nil,
			"guard", guardActive.active(), "root_decoders", len(eng.RootDecoders()), "regions", len(eng.Regions()))
	})
	notifyStopping()
	if errors.Is(err, service.ErrNameTaken) {
		return err
	}
	if err != nil {
		return err
	}
	stopEngine()
	wg.Wait()
	if engineErr != nil {
		return fmt.Errorf("engine: %w", engineErr)
	}
	log.Info("stopped")
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

// guardState is the guard as the D-Bus GuardActive property sees it.
type guardState struct {
	mu sync.Mutex
	g  *guard.Guard
}

func (s *guardState) set(g *guard.Guard) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.g = g
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
