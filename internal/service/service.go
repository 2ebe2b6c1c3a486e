package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/region"
)

// Engine is what the service needs of *region.Engine.
type Engine interface {
	Ready() <-chan struct{}
	Subscribe(ctx context.Context) (<-chan region.Event, func())
	Regions() []region.RegionInfo
	RootDecoders() []region.RootDecoderInfo
	KernelFeatures() []string
	MemdevCapacities() []region.MemdevCapacity
	Create(ctx context.Context, req region.CreateRequest) (region.RegionInfo, error)
	Delete(ctx context.Context, req region.DeleteRequest) error
	Enable(ctx context.Context, name string) error
	Disable(ctx context.Context, name string) error
	DisableWith(ctx context.Context, name string, mem region.MemoryOptions) error
	Rescan(ctx context.Context) error
}

// Config wires a Service.
type Config struct {
	Engine  Engine
	Version string
	// Simulated is reported as Manager.Simulated.
	Simulated bool
	// LockDirectory is published as Manager.LockDirectory: the absolute
	// path of the writers' lock files, for cxlregionctl lock.
	LockDirectory string
	// GuardActive reports whether the fanotify guard runs; nil means it
	// does not.
	GuardActive func() bool
	// GuardQueueDepth reports how many foreign opens the guard holds or
	// keeps waiting; nil means none.
	GuardQueueDepth func() int
	// GuardChanged receives a value whenever GuardActive or
	// GuardQueueDepth may have changed; the service then reads them again.
	// Nil: they are read only when the rest of the model is.
	GuardChanged <-chan struct{}
	// DefaultTimeout, when set, bounds an operation whose caller gave no
	// timeout option; it is read per call, so a reloaded configuration
	// applies at once. Nil or 0: the engine's own default.
	DefaultTimeout func() time.Duration
	// JobGrace is how long a finished Job object stays for clients to read
	// its outcome.
	JobGrace time.Duration
	// ShutdownGrace is how long Serve lets in-flight operations finish
	// after its context ends before canceling them (which makes a create
	// roll back).
	ShutdownGrace time.Duration
	Logger        *slog.Logger

	// selfUID replaces the process's effective uid (tests).
	selfUID *uint32
	// contractXML replaces api.IntrospectionXML (tests of a contract that
	// drifted from the handlers).
	contractXML string
}

// ErrNameTaken is returned by Serve when another process owns the bus name.
var ErrNameTaken = errors.New("the bus name " + api.BusName + " is already owned by another process (is another cxlregiond running?)")

// Service exports the engine on D-Bus.
type Service struct {
	cfg    Config
	engine Engine
	log    *slog.Logger
	xml    *api.Interfaces
	// dispatch is every served interface's methods, built from the XML.
	dispatch map[string]iface
	tree     *objectTree
	conn     atomic.Pointer[dbus.Conn]
	// selfUID is the daemon's effective uid.
	selfUID uint32

	// opsCtx is the context of every operation; it outlives a method call
	// (a no_wait job runs on) and is canceled only ShutdownGrace after
	// shutdown began.
	opsCtx    context.Context
	cancelOps context.CancelFunc

	mu      sync.Mutex // guards closing and nextJob, and orders ops.Add after closing is read
	closing bool
	ops     sync.WaitGroup // in-flight mutating calls and jobs
	nextJob uint64
	jobs    map[dbus.ObjectPath]*job // until their objects are removed

	// syncAsked counts calls of sync; syncCovered, guarded by
	// tree.updateMu, is the last of them a completed sync covers.
	syncAsked   atomic.Uint64
	syncCovered uint64
	// settleAt, guarded by tree.updateMu, is the first SettleCheckAt of
	// the regions the last sync read: the one moment the model changes
	// with no event. Zero: none. A sync that moves it tells follow on
	// rearm (one slot: follow reads the latest).
	settleAt time.Time
	rearm    chan struct{}

	graceWG sync.WaitGroup // job objects waiting to be removed
	stopped chan struct{}  // closed when Serve returns
}

// New returns a service; pass it to dbus.WithHandler when connecting,
// then call Serve.
func New(cfg Config) (*Service, error) {
	if cfg.Engine == nil {
		return nil, errors.New("dbus service: Engine is required")
	}
	if cfg.JobGrace == 0 {
		cfg.JobGrace = 30 * time.Second
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	doc := api.IntrospectionXML
	if cfg.contractXML != "" {
		doc = cfg.contractXML
	}
	xml, err := api.ParseInterfacesFrom(doc)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, engine: cfg.Engine, log: cfg.Logger, xml: xml, stopped: make(chan struct{}),
		selfUID: uint32(os.Geteuid()), jobs: map[dbus.ObjectPath]*job{}, rearm: make(chan struct{}, 1)}
	if cfg.selfUID != nil {
		s.selfUID = *cfg.selfUID
	}
	if s.dispatch, err = buildDispatch(xml, s.handlers()); err != nil {
		return nil, err
	}
	s.opsCtx, s.cancelOps = context.WithCancel(context.Background())
	s.tree = newObjectTree(api.RootPath, s.emit, s.checkProps)
	s.tree.update(func(tx *treeTx) { tx.set(api.ManagerPath, object{api.ManagerInterface: s.managerProps()}) })
	return s, nil
}

// Serve waits for the engine's first scan, exports the model, requests the
// bus name and calls ready; then it follows the engine until ctx ends.
// On shutdown it refuses new mutating calls (Busy), lets in-flight ones
// finish for ShutdownGrace, cancels the rest (a create rolls back) and
// waits for them. conn must have been made with dbus.WithHandler(s).
func (s *Service) Serve(ctx context.Context, conn *dbus.Conn, ready func()) error {
	defer close(s.stopped)
	s.conn.Store(conn)
	events, unsubscribe := s.engine.Subscribe(ctx)
	defer unsubscribe()
	select {
	case <-s.engine.Ready():
	case <-ctx.Done():
		return nil
	}
	s.sync()
	reply, err := conn.RequestName(api.BusName, dbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("request bus name %s: %w", api.BusName, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner && reply != dbus.RequestNameReplyAlreadyOwner {
		return ErrNameTaken
	}
	s.log.Info("serving on the bus", "name", api.BusName)
	if ready != nil {
		ready()
	}
	s.follow(ctx, events)
	s.shutdown()
	if _, err := conn.ReleaseName(api.BusName); err != nil {
		s.log.Debug("release bus name", "err", err)
	}
	return nil
}

// follow brings the exported model in line after each batch of engine
// events, at the moment a region settles by time alone (the regions'
// SettleCheckAt: one timer, armed for the earliest), and when the guard
// says its properties changed, until ctx ends. Nothing else wakes it: an
// idle daemon does no work (bench BenchmarkIdle; it re-read the whole
// model every second before, 254 ms of CPU a second with 4096 regions).
func (s *Service) follow(ctx context.Context, events <-chan region.Event) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var armed time.Time
	arm := func() {
		at := s.nextSettle()
		if at.Equal(armed) {
			return
		}
		armed = at
		timer.Stop()
		if !at.IsZero() {
			timer.Reset(time.Until(at))
		}
	}
	arm()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.rearm:
		case <-timer.C:
			armed = time.Time{}
			s.sync()
		case <-s.cfg.GuardChanged:
			s.syncGuard()
		case ev, ok := <-events:
			if !ok {
				return
			}
			switch drain(events, ev) {
			case syncAll:
				s.sync()
			case syncRoots:
				s.syncRoots()
			}
		}
		arm()
	}
}

// syncNeed is how much of the exported model a batch of events may have
// changed.
type syncNeed int

const (
	syncNone  syncNeed = iota // a uevent: what it changed comes as its own event
	syncRoots                 // root decoders' own properties: a writer's queue, a freeze
	syncAll
)

func needOf(ev region.Event) syncNeed {
	switch ev.Kind {
	case region.UeventReceived:
		return syncNone
	case region.RootDecoderChanged:
		return syncRoots
	}
	return syncAll
}

// drain takes every event already queued, so a burst costs one re-read. It
// reports how much of the exported model they may have changed.
func drain(events <-chan region.Event, first region.Event) syncNeed {
	need := needOf(first)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return need
			}
			need = max(need, needOf(ev))
		default:
			return need
		}
	}
}

// begin admits a mutating call, or refuses it while shutting down.
func (s *Service) begin(what string) (done func(), err *dbus.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, busy("%s: cxlregiond is shutting down", what)
	}
	s.ops.Add(1)
	return s.ops.Done, nil
}

func (s *Service) shutdown() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		s.ops.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(s.cfg.ShutdownGrace):
		s.log.Warn("operations still running after the shutdown grace period; canceling them", "grace", s.cfg.ShutdownGrace)
		s.cancelOps()
		<-finished
	}
	s.cancelOps()
	s.graceWG.Wait()
	s.sync()
}

// checkProps reports an exported interface whose properties are not the
// ones the XML declares, with their types: a bug of the daemon, which the
// tests turn into a failure.
func (s *Service) checkProps(path dbus.ObjectPath, iface string, p props) {
	sigs := make(map[string]string, len(p))
	for name, v := range p {
		sigs[name] = v.Signature().String()
	}
	if err := s.xml.CheckProperties(iface, sigs); err != nil {
		s.log.Error("exported properties drifted from the contract", "path", path, "err", err)
	}
}

func (s *Service) emit(sig signal) {
	conn := s.conn.Load()
	if conn == nil {
		return
	}
	if err := conn.Emit(sig.path, sig.name, sig.args...); err != nil {
		s.log.Warn("emit signal", "path", sig.path, "signal", sig.name, "err", err)
	}
}
