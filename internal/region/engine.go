package region

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cxlregion/cxlregiond/internal/journal"
	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
	"github.com/cxlregion/cxlregiond/internal/uevent"
)

// Config wires an Engine.
type Config struct {
	FS      *sysfs.FS
	Writers *lock.Registry
	// Events is the uevent source; nil means rescans only.
	Events uevent.Source
	// StateDir holds the intent journal and the generation counter
	// (internal/journal).
	StateDir string
	// BootID is the running kernel's boot id
	// (/proc/sys/kernel/random/boot_id); journal intents of another boot
	// are closed without touching sysfs. "" when unknown.
	BootID string
	// SettleWindow is how long a region the daemon did not create must stay
	// unchanged before it may be deleted, unless it is committed and bound.
	SettleWindow time.Duration
	// BoundQuiet is how long the devices below a bound region must be
	// unchanged before it may be deleted (the real-kernel lab saw no oops
	// with 100 ms).
	BoundQuiet time.Duration
	// SettlePoll is how often a waiting operation re-reads sysfs: attribute
	// writes by other tools emit no uevent.
	SettlePoll time.Duration
	// RescanInterval is the period of full rescans; 0 disables them.
	RescanInterval time.Duration
	// DefaultTimeout bounds a request whose context has no deadline.
	DefaultTimeout time.Duration
	// SubscriberQueue bounds the events queued for one subscriber
	// (default DefaultSubscriberQueue); OnSubscriberOverflow, when set, is
	// called each time a subscriber's queue is dropped for a resync.
	SubscriberQueue      int
	OnSubscriberOverflow func()
	Logger               *slog.Logger
	// crashAt, when it returns true for a crash point, makes the engine
	// stop dead there, as a killed daemon would. Tests only.
	crashAt func(crashPoint) bool
	// JournalFile opens the journal's log for appending; nil opens the
	// file itself. Tests and benchmarks (bench/) wrap it to count syncs
	// or to make writes fail; the daemon leaves it nil.
	JournalFile func(path string) (journal.File, error)
}

func (c *Config) setDefaults() {
	if c.SettleWindow == 0 {
		c.SettleWindow = 2 * time.Second
	}
	if c.BoundQuiet == 0 {
		c.BoundQuiet = 100 * time.Millisecond
	}
	if c.SettlePoll == 0 {
		c.SettlePoll = 20 * time.Millisecond
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = 60 * time.Second
	}
	if c.SubscriberQueue <= 0 {
		c.SubscriberQueue = DefaultSubscriberQueue
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Engine is the model of the host's regions and the only path by which the
// daemon changes them.
type Engine struct {
	// cfg is fixed once New returns and is read without a lock. The
	// settings a reload changes are copied out of it into fields under mu
	// (settleWindow, boundQuiet) or sent to Run (rescanEvery); cfg's own
	// SettleWindow and BoundQuiet are only their starting values.
	cfg     Config
	fs      *sysfs.FS
	writers *lock.Registry
	log     *slog.Logger
	journal *journal.Journal
	// journalErrors counts journal failures surfaced by journalFailed.
	journalErrors atomic.Uint64
	made          *madeRegions // has its own lock
	hub           hub          // has its own locks

	ready     chan struct{}
	readyOnce sync.Once
	rescanReq chan chan error
	// rescanEvery carries a new RescanInterval to Run (the latest wins).
	rescanEvery chan time.Duration
	// inflight counts operations whose caller was answered at its
	// deadline while their writes went on (answerBy); Run waits for them.
	inflight sync.WaitGroup

	// mu guards every field below it. It is held only for reads and
	// updates of the model, never across a sysfs write, a wait or a
	// publish to subscribers.
	mu   sync.Mutex
	topo *sysfs.Topology
	// topoGen counts changes of topo: replaced (setTopoLocked) or changed
	// in place (noteFreed, noteDetached). derived is what is worked out
	// from topo, kept until topoGen moves on (derivedLocked).
	topoGen  uint64
	derived  topoDerived
	roots    map[string]*rootState
	regions  map[string]*regionState
	deletes  map[genKey]*deleteCall
	creating map[string]bool // region names a daemon create is making
	// lastGen is the highest generation this engine has numbered. A
	// generation at or below it that is not its name's live one in regions
	// is gone (deleted, or removed by the kernel): generations only grow
	// and none comes back, so nothing per ended generation is kept.
	lastGen uint64
	changed chan struct{} // closed and replaced on every model change
	crashed bool
	tickets uint64 // last reading ticket handed out
	// settleWindow and boundQuiet are the settle rule's times
	// (Config.SettleWindow, Config.BoundQuiet); SetSettle changes them.
	settleWindow time.Duration
	boundQuiet   time.Duration
}

type rootState struct {
	info sysfs.RootDecoder
}

type regionState struct {
	reg       sysfs.Region
	gen       uint64
	origin    Origin
	firstSeen time.Time
	changedAt time.Time // last time an observed attribute changed
	deleting  bool
	// deleteWritten is set just before this generation's delete_region
	// write (writeDeleteRegion): whatever the write returned, no second
	// one follows.
	deleteWritten bool
	// bornSeq is the kernel's uevent SEQNUM read just before the reading
	// that started this generation: a remove uevent at or below it is
	// about an earlier holder of the name. 0 when unknown.
	bornSeq uint64
	// readTicket orders readings of sysfs: a reading that started before
	// the one last applied is stale (it may be torn by writes in between)
	// and is dropped.
	readTicket uint64
	// bornTicket is the ticket of the reading that started this
	// generation: a create tells by it whether the model's region under
	// the name it claimed is an earlier one or its own, already read from
	// the kernel's add uevent.
	bornTicket uint64
}

type genKey struct {
	name string
	gen  uint64
}

// New returns an engine; Run starts it.
func New(cfg Config) (*Engine, error) {
	cfg.setDefaults()
	if cfg.FS == nil || cfg.Writers == nil {
		return nil, errors.New("region engine: FS and Writers are required")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("region engine: StateDir is required")
	}
	j, err := journal.Open(cfg.StateDir, journal.Options{OpenFile: cfg.JournalFile, BootID: cfg.BootID})
	if err != nil {
		return nil, err
	}
	if rep := j.Report(); rep.TornBytes != 0 || rep.Legacy {
		cfg.Logger.Warn("journal opened", "path", j.Path(), "torn_tail_bytes", rep.TornBytes,
			"converted_v1_intents", rep.Converted, "converted_v1", rep.Legacy)
	}
	made, err := openMade(cfg.StateDir, cfg.BootID)
	if err != nil {
		cfg.Logger.Error("regions found at startup have an unknown origin", "err", err)
	}
	e := &Engine{
		cfg:         cfg,
		fs:          cfg.FS,
		writers:     cfg.Writers,
		log:         cfg.Logger,
		journal:     j,
		made:        made,
		hub:         hub{limit: cfg.SubscriberQueue, overflowed: cfg.OnSubscriberOverflow},
		ready:       make(chan struct{}),
		rescanReq:   make(chan chan error),
		rescanEvery: make(chan time.Duration, 1),
		roots:       make(map[string]*rootState),
		regions:     make(map[string]*regionState),
		deletes:     make(map[genKey]*deleteCall),
		creating:    make(map[string]bool),
		changed:     make(chan struct{}),

		settleWindow: cfg.SettleWindow,
		boundQuiet:   cfg.BoundQuiet,
	}
	cfg.Writers.ObserveQueues(e.writerQueueChanged)
	return e, nil
}

// writerQueueChanged reports a change of a root decoder's QueueDepth (an
// operation, or the guard for another process, took the writer, queued
// for it, or let it go) as RootDecoderChanged, so that readers of the
// depth follow events instead of polling. The lock registry calls it with
// none of its locks held (lock.Registry.ObserveQueues); nothing in the
// engine takes, waits for or releases a writer's turn while holding mu.
func (e *Engine) writerQueueChanged(rootDecoder string) {
	if !e.hub.subscribed() {
		return // its free capacity may need a plan: not for nobody
	}
	e.mu.Lock()
	rs, ok := e.roots[rootDecoder]
	var ev Event
	if ok {
		ev = Event{Kind: RootDecoderChanged, RootDecoder: e.rootInfoLocked(rs)}
	}
	e.mu.Unlock()
	if ok {
		e.hub.publish(ev)
	}
}

// Ready is closed once the first scan is done and the journal recovered.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// Subscribe returns every event from now on, in order, until cancel is
// called or ctx ends. The engine never waits for a subscriber.
func (e *Engine) Subscribe(ctx context.Context) (<-chan Event, func()) {
	return e.hub.subscribe(ctx)
}

// Run scans, recovers the journal, then follows uevents and rescans until
// ctx ends.
func (e *Engine) Run(ctx context.Context) (err error) {
	defer func() {
		// Last, after every goroutine of Run: what was appended becomes
		// durable.
		if cerr := e.journal.Close(); cerr != nil {
			e.journalFailed("close", e.journal.Path(), cerr)
			err = errors.Join(err, fmt.Errorf("close journal: %w", cerr))
		}
	}()
	// Operations answered at their caller's deadline (answerBy) still
	// write the journal: they end before it closes.
	defer e.inflight.Wait()
	if err := e.rescan(ctx, "startup"); err != nil {
		return fmt.Errorf("initial scan: %w", err)
	}
	if err := e.recover(ctx); err != nil {
		return fmt.Errorf("recover journal: %w", err)
	}
	e.readyOnce.Do(func() { close(e.ready) })

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	needRescan := make(chan string, 1)
	if e.cfg.Events != nil {
		wg.Go(func() { e.followUevents(ctx, needRescan) })
	}
	var ticker *time.Ticker
	var tick <-chan time.Time
	every := func(d time.Duration) {
		if ticker != nil {
			ticker.Stop()
			ticker, tick = nil, nil
		}
		if d > 0 {
			ticker = time.NewTicker(d)
			tick = ticker.C
		}
	}
	every(e.cfg.RescanInterval)
	defer every(0)
	for {
		// A reload takes effect before anything else pending: a tick that
		// raced SetRescanInterval(0) must not rescan once the loop has
		// seen the new value (select picks among ready cases at random).
		select {
		case d := <-e.rescanEvery:
			every(d)
		default:
		}
		var err error
		select {
		case <-ctx.Done():
			return nil
		case d := <-e.rescanEvery:
			every(d)
			continue
		case reason := <-needRescan:
			err = e.rescan(ctx, reason)
		case <-tick:
			err = e.rescan(ctx, "periodic")
		case reply := <-e.rescanReq:
			err = e.rescan(ctx, "request")
			reply <- err
		}
		if err != nil && ctx.Err() == nil {
			e.log.Warn("rescan failed", "err", err)
		}
	}
}

// SetRescanInterval changes the period of full rescans (a config reload);
// 0 stops them. It does not block: a running engine applies the latest
// value, one not yet running starts with it.
func (e *Engine) SetRescanInterval(d time.Duration) {
	for {
		select {
		case e.rescanEvery <- d:
			return
		default:
		}
		select {
		case <-e.rescanEvery: // an older value nobody took yet
		default:
		}
	}
}

// Rescan asks the running engine for a full rescan and waits for it.
func (e *Engine) Rescan(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case e.rescanReq <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Regions returns the regions the engine knows, sorted by name.
func (e *Engine) Regions() []RegionInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]RegionInfo, 0, len(e.regions))
	for _, r := range e.regions {
		out = append(out, e.regionInfoLocked(r))
	}
	sort.Slice(out, func(i, j int) bool { return sysfs.CompareNames(out[i].Name, out[j].Name) < 0 })
	return out
}

// Region returns one region by name.
func (e *Engine) Region(name string) (RegionInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.regions[name]
	if !ok {
		return RegionInfo{}, fmt.Errorf("region %s: %w", name, ErrNotFound)
	}
	return e.regionInfoLocked(r), nil
}

// RootDecoders returns the root decoders, sorted by name.
func (e *Engine) RootDecoders() []RootDecoderInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]RootDecoderInfo, 0, len(e.roots))
	for _, rs := range e.roots {
		out = append(out, e.rootInfoLocked(rs))
	}
	sort.Slice(out, func(i, j int) bool { return sysfs.CompareNames(out[i].Name, out[j].Name) < 0 })
	return out
}

// RootDecoder returns one root decoder by name.
func (e *Engine) RootDecoder(name string) (RootDecoderInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rs, ok := e.roots[name]
	if !ok {
		return RootDecoderInfo{}, fmt.Errorf("root decoder %s: %w", name, ErrNotFound)
	}
	return e.rootInfoLocked(rs), nil
}

// KernelFeatures lists what the kernel's sysfs offers, detected by the
// presence of attributes.
func (e *Engine) KernelFeatures() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	feats := map[string]bool{}
	if e.topo != nil {
		for _, rd := range e.topo.RootDecoders {
			if rd.CreatePmem {
				feats["create_pmem_region"] = true
			}
			if rd.CreateRAM {
				feats["create_ram_region"] = true
			}
			if rd.QoSClass != nil {
				feats["qos_class"] = true
			}
		}
		for _, p := range append(append([]sysfs.Port{}, e.topo.Ports...), e.topo.Endpoints...) {
			if p.DecodersCommitted != nil {
				feats["decoders_committed"] = true
			}
		}
		for _, r := range e.topo.Regions {
			if r.Locked != nil {
				feats["region_locked"] = true
			}
		}
	}
	out := make([]string, 0, len(feats))
	for f := range feats {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

func (e *Engine) rootInfoLocked(rs *rootState) RootDecoderInfo {
	info := RootDecoderInfo{
		Name:                  rs.info.Name,
		Port:                  rs.info.Port,
		CapPmem:               rs.info.CapPmem && rs.info.CreatePmem,
		CapRAM:                rs.info.CapRAM && rs.info.CreateRAM,
		Size:                  rs.info.Size,
		InterleaveWays:        rs.info.InterleaveWays,
		InterleaveGranularity: rs.info.InterleaveGranularity,
		Targets:               append([]string(nil), rs.info.Targets...),
		FreeCapacity:          e.freeCapacityLocked(rs.info),
	}
	if w, err := e.writers.Writer(rs.info.Name); err == nil {
		frozen, reason := w.Frozen()
		info.Frozen = frozen
		if reason != nil {
			info.FrozenReason = reason.Error()
		}
		info.QueueDepth = w.QueueDepth()
	}
	return info
}

// freeCapacityLocked is the largest region a create in the window can get
// now (largestCreate: HPA, device capacity and the kernel's order rules),
// from the last reading of the topology; before the first one, the HPA the
// window's regions do not hold.
func (e *Engine) freeCapacityLocked(rd sysfs.RootDecoder) uint64 {
	if e.topo != nil {
		d := e.derivedLocked()
		if c, ok := d.freeCap[rd.Name]; ok {
			return c
		}
		c := largestCreate(e.topo, rd)
		d.freeCap[rd.Name] = c
		return c
	}
	var used uint64
	for _, r := range e.regions {
		if r.reg.RootDecoder == rd.Name {
			used += r.reg.Size
		}
	}
	if used >= rd.Size {
		return 0
	}
	return rd.Size - used
}

func (e *Engine) regionInfoLocked(r *regionState) RegionInfo {
	info := RegionInfo{
		Name:                  r.reg.Name,
		Generation:            r.gen,
		RootDecoder:           r.reg.RootDecoder,
		Type:                  r.reg.Type,
		Size:                  r.reg.Size,
		UUID:                  r.reg.UUID,
		InterleaveWays:        r.reg.InterleaveWays,
		InterleaveGranularity: r.reg.InterleaveGranularity,
		Targets:               append([]string(nil), r.reg.Targets...),
		Origin:                r.origin,
		FirstSeen:             r.firstSeen,
		Memory: sysfs.RegionMemory{
			BlockSize: r.reg.Memory.BlockSize,
			Dax:       slices.Clone(r.reg.Memory.Dax),
			Blocks:    slices.Clone(r.reg.Memory.Blocks),
		},
	}
	now := time.Now()
	info.Settled = e.settledLocked(r, now) == nil
	info.SettleCheckAt = e.settleCheckAtLocked(r, now)
	if r.reg.Resource != nil {
		info.Resource = *r.reg.Resource
	}
	info.Memdevs = make([]string, len(info.Targets))
	if e.topo != nil {
		memdevOf := e.derivedLocked().memdevOf
		for i, t := range info.Targets {
			info.Memdevs[i] = memdevOf[t]
		}
	}
	switch {
	case r.deleting:
		info.State = StateDeleting
	case r.reg.Driver != "":
		info.State = StateEnabled
	case r.reg.Committed:
		info.State = StateCommitted
	default:
		info.State = StateConfiguring
	}
	return info
}

// notifyLocked wakes everything waiting for a model change.
func (e *Engine) notifyLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// changedCh returns a channel closed at the next model change.
func (e *Engine) changedCh() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

// Capacity reads every memdev's capacity from sysfs: allocated, free and
// stranded, per endpoint decoder.
func (e *Engine) Capacity() ([]MemdevCapacity, error) {
	topo, err := e.fs.Scan()
	if err != nil {
		return nil, fmt.Errorf("capacity: %w", err)
	}
	e.mu.Lock()
	if e.topo != nil { // the first reading is the startup rescan's
		e.setTopoLocked(topo)
	}
	e.mu.Unlock()
	return memdevCapacities(topo), nil
}

// MemdevCapacities is every memdev's capacity from the last reading of the
// topology (kept current after every create and delete and on rescans);
// Capacity reads sysfs afresh.
func (e *Engine) MemdevCapacities() []MemdevCapacity {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.topo == nil {
		return nil
	}
	return memdevCapacities(e.topo)
}

// storeTopology reads the topology again after an operation changed the
// decoders, so that free capacity is reported as it now is.
func (e *Engine) storeTopology() {
	topo, err := e.fs.Scan()
	if err != nil {
		e.log.Warn("could not read the topology after an operation; free capacity may be stale", "err", err)
		return
	}
	e.mu.Lock()
	if e.topo != nil {
		e.setTopoLocked(topo)
	}
	e.mu.Unlock()
}

// setTopoLocked makes topo the last reading of the topology.
func (e *Engine) setTopoLocked(topo *sysfs.Topology) {
	e.topo = topo
	e.topoGen++
}

// topoDerived is what the engine works out from its last topology reading
// and keeps while the reading is unchanged: the service asks for all of it
// on every sync (each second), and working it out each time cost a plan
// per root decoder over the whole topology, and a walk of every endpoint
// decoder per region target, both quadratic on a host of thousands of
// regions (bench BenchmarkIdle, BenchmarkStartup).
type topoDerived struct {
	gen uint64 // the topoGen it was worked out at
	// freeCap is freeCapacityLocked's answer per root decoder, filled as
	// asked.
	freeCap map[string]uint64
	// memdevOf is each endpoint decoder's memdev.
	memdevOf map[string]string
}

// derivedLocked returns what is worked out from e.topo, starting afresh
// when the topology changed since. e.topo must not be nil.
func (e *Engine) derivedLocked() *topoDerived {
	d := &e.derived
	if d.freeCap == nil || d.gen != e.topoGen {
		*d = topoDerived{gen: e.topoGen, freeCap: map[string]uint64{}, memdevOf: make(map[string]string, len(e.topo.EndpointDecoders))}
		for _, ed := range e.topo.EndpointDecoders {
			d.memdevOf[ed.Name] = ed.Memdev
		}
	}
	return d
}
