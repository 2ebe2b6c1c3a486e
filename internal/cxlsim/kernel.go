package cxlsim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// Kernel is the simulated kernel: its sysfs tree (a sysfs.Backend), its
// uevents (Subscribe) and its log. It is safe for concurrent use by many
// goroutines; like the real kernel it does not serialize what userspace
// does not serialize (see delete.go).
type Kernel struct {
	cfg config

	// mu guards every field below it: the whole model. Like the kernel's
	// own locks it is dropped where the kernel drops them (acpiTearing).
	mu     sync.Mutex
	st     *state
	closed bool

	// indices into st
	rds     map[string]*rootDecoderState
	ports   map[string]*portState
	sds     map[string]*switchDecState
	eds     map[string]*epDecState
	mems    map[string]*memdevState
	regions map[string]*regionState // live: registered cxl regions (and released-but-referenced ones until release)

	// the tree
	devs map[string]*device // by sysfs path
	// kids indexes devs by parent directory (path.Dir of the path), so
	// that listing a directory does not walk every device.
	kids map[string]map[string]*device
	bus  map[string]map[string]*device // bus -> name -> device
	// lastIno numbers device directories as kernfs does: each registered
	// device gets the next number, never one of a device that went.
	lastIno uint64

	acpiTearing bool // a cxl_acpi unbind is running (it drops k.mu)

	subs     map[*Subscription]struct{}
	dropNext int

	klog        klog
	faults      []*fault
	faultsFired int // writes failed by an injected fault
	delays      []*delayRule
	timers      map[int]func() bool
	timerID     int
	wg          sync.WaitGroup // AfterFunc callbacks in flight

	lockFile *os.File

	// writeCtx is the context of the write whose store runs (k.mu held):
	// a store that waits until its writer is signalled reads it first.
	writeCtx context.Context
	// offlineRelease, while StallOffline is on, is closed when the stall
	// ends (StallOffline(false) or Close).
	offlineRelease chan struct{}
}

var _ sysfs.Backend = (*Kernel)(nil)

// ErrClosed is returned by a closed Kernel and its subscriptions.
var ErrClosed = errors.New("cxlsim: kernel closed")

// New boots a simulated kernel. With WithStateFile, the state saved by a
// previous process is loaded when the file exists.
func New(opts ...Option) (*Kernel, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("cxlsim: %w", err)
		}
	}
	k := &Kernel{
		cfg:    cfg,
		subs:   map[*Subscription]struct{}{},
		timers: map[int]func() bool{},
	}
	k.klog.init(cfg.logWriter, cfg.logLines, cfg.clock)
	if cfg.stateFile != "" {
		if err := k.lockState(); err != nil {
			return nil, err
		}
		loaded, err := k.loadState()
		if err != nil {
			k.unlockState()
			return nil, err
		}
		if loaded {
			return k, nil
		}
	}
	k.boot()
	if err := k.saveLocked(); err != nil {
		k.unlockState()
		return nil, err
	}
	return k, nil
}

// Profile is the kernel profile ("6.1" or "6.12").
func (k *Kernel) Profile() string { return k.cfg.profile }

// Close stops pending kernel work (timers), ends every subscription and
// releases the state file lock. The tree stays readable.
func (k *Kernel) Close() error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	if k.offlineRelease != nil {
		close(k.offlineRelease)
		k.offlineRelease = nil
	}
	for id, stop := range k.timers {
		if stop() {
			k.wg.Done()
		}
		delete(k.timers, id)
	}
	for s := range k.subs {
		s.closeLocked()
	}
	err := k.saveLocked()
	k.mu.Unlock()
	k.wg.Wait()
	k.unlockState()
	return err
}

// after runs f with k.mu held after d, unless the kernel is closed or
// the returned stop function (called with k.mu held) cancels it first.
func (k *Kernel) after(d time.Duration, f func()) (stop func() bool) {
	k.timerID++
	id := k.timerID
	k.wg.Add(1)
	st := k.cfg.clock.AfterFunc(d, func() {
		defer k.wg.Done()
		k.mu.Lock()
		defer k.mu.Unlock()
		if _, ok := k.timers[id]; !ok || k.closed {
			return
		}
		delete(k.timers, id)
		f()
		k.saveOrLog()
	})
	k.timers[id] = st
	return func() bool {
		s, ok := k.timers[id]
		if !ok {
			return false
		}
		delete(k.timers, id)
		if s() {
			k.wg.Done()
		}
		return true
	}
}

// boot builds the tree of a freshly booted machine: cxl_acpi bound, every
// port and endpoint enumerated, no region. It sends no uevent (nobody
// listened at boot) but advances SEQNUM past the boot events.
func (k *Kernel) boot() {
	t := k.cfg.topology
	st := &state{
		Profile:     k.cfg.profile,
		Topology:    t,
		Seqnum:      bootSeqnum,
		Writes:      map[string]int{},
		WriteValues: map[string]int{},
	}
	for i := range t.RootDecoders {
		st.RootDecoders = append(st.RootDecoders, &rootDecoderState{Name: fmt.Sprintf("decoder0.%d", i), Index: i, CachedID: -1})
	}
	for i, hb := range t.HostBridges {
		p := &portState{Name: portName(i), HB: i, Memdev: -1, CommitEnd: -1, HdmEnd: -1}
		st.Ports = append(st.Ports, p)
		for j := 0; j < hb.Decoders; j++ {
			st.Switch = append(st.Switch, &switchDecState{Name: fmt.Sprintf("decoder%d.%d", i+1, j), Port: p.Name, Index: j})
		}
	}
	nhb := len(t.HostBridges)
	for i, m := range t.Memdevs {
		ep := &portState{Name: fmt.Sprintf("endpoint%d", nhb+1+i), HB: m.HostBridge, Memdev: i, CommitEnd: -1, HdmEnd: -1}
		st.Ports = append(st.Ports, ep)
		for j := 0; j < m.Decoders; j++ {
			st.Endpoint = append(st.Endpoint, &epDecState{Name: fmt.Sprintf("decoder%d.%d", nhb+1+i, j), Port: ep.Name, Index: j, Memdev: i})
		}
		st.Memdevs = append(st.Memdevs, &memdevState{Name: fmt.Sprintf("mem%d", i), Index: i})
	}
	k.st = st
	k.index()
	k.resetDecoders()
	// cxl_acpi probe, then the memdevs' probes.
	k.st.ACPIBound = true
	for _, rd := range k.st.RootDecoders {
		rd.CachedID = k.idaAlloc()
	}
	for _, p := range k.st.Ports {
		p.Present = true
		p.Bound = true
	}
	for _, m := range k.st.Memdevs {
		m.Bound = true
		m.Nvdimm = k.st.Topology.Memdevs[m.Index].PmemSize > 0 && k.hasBridge()
		m.NvdimmBound = m.Nvdimm
	}
	k.rebuildTree()
}

// bootSeqnum is the SEQNUM after the boot and module-load uevents, about
// where the captures' first region event is.
const bootSeqnum = 787

func (k *Kernel) index() {
	k.rds = map[string]*rootDecoderState{}
	k.ports = map[string]*portState{}
	k.sds = map[string]*switchDecState{}
	k.eds = map[string]*epDecState{}
	k.mems = map[string]*memdevState{}
	k.regions = map[string]*regionState{}
	for _, v := range k.st.RootDecoders {
		k.rds[v.Name] = v
	}
	for _, v := range k.st.Ports {
		k.ports[v.Name] = v
	}
	for _, v := range k.st.Switch {
		k.sds[v.Name] = v
	}
	for _, v := range k.st.Endpoint {
		k.eds[v.Name] = v
	}
	for _, v := range k.st.Memdevs {
		k.mems[v.Name] = v
	}
	for _, v := range k.st.Regions {
		k.regions[v.Name] = v
	}
}

// resetDecoders puts every decoder in its power-on state.
func (k *Kernel) resetDecoders() {
	for _, sd := range k.st.Switch {
		*sd = switchDecState{Name: sd.Name, Port: sd.Port, Index: sd.Index, Ways: 1, Gran: k.switchIdleGranularity()}
	}
	for _, ed := range k.st.Endpoint {
		*ed = epDecState{Name: ed.Name, Port: ed.Port, Index: ed.Index, Memdev: ed.Memdev, Mode: "none", Ways: 1, Gran: 256}
	}
}

// switchIdleGranularity is what an unprogrammed host bridge decoder shows:
// 4096 on 6.1, 256 on 6.12 (captures 1-idle).
func (k *Kernel) switchIdleGranularity() int {
	if k.st.Profile == Profile61 {
		return 4096
	}
	return 256
}

// rebuildTree registers the devices the state implies, without events.
func (k *Kernel) rebuildTree() {
	k.devs = map[string]*device{}
	k.kids = map[string]map[string]*device{}
	k.bus = map[string]map[string]*device{}
	plat := k.register(newPlatform())
	for _, m := range k.st.Memdevs {
		d := k.register(k.memdevDev(m))
		if m.Bound {
			d.driver = "cxl_mem"
		}
		if m.Nvdimm {
			nv := k.register(k.nvdimmDev(m))
			if m.NvdimmBound {
				nv.driver = "cxl_nvdimm"
			}
		}
	}
	if !k.st.ACPIBound {
		return
	}
	plat.driver = "cxl_acpi"
	k.register(k.rootDev())
	for _, rd := range k.st.RootDecoders {
		k.register(k.rootDecoderDev(rd))
	}
	for _, p := range k.st.Ports {
		if !p.Present {
			continue
		}
		d := k.register(k.portDev(p))
		if !p.Bound {
			continue
		}
		d.driver = "cxl_port"
		for _, sd := range k.st.Switch {
			if sd.Port == p.Name {
				k.register(k.switchDecDev(sd))
			}
		}
		for _, ed := range k.st.Endpoint {
			if ed.Port == p.Name {
				k.register(k.epDecDev(ed))
			}
		}
	}
	if k.hasBridge() {
		k.register(bridgeDev()).driver = "cxl_nvdimm_bridge"
		k.register(ndBusDev()).driver = "nd_bus"
		k.register(ndCtlDev())
		for _, m := range k.st.Memdevs {
			if m.NvdimmBound {
				k.register(k.nmemDev(m)).driver = "nvdimm"
			}
		}
	}
	k.register(memoryRootDev())
	if k.st.Memory != nil {
		for _, b := range k.st.Memory.Blocks {
			k.register(memBlockDev(b))
		}
	}
	for _, r := range k.st.Regions {
		d := k.register(k.regionDev(r))
		if !r.Bound {
			continue
		}
		d.driver = "cxl_region"
		if r.Mode == "pmem" {
			k.register(k.pmemRegionDev(r)).driver = "cxl_pmem_region"
			if r.Registered {
				k.register(ndRegionDev(r)).driver = "nd_region"
				for _, s := range ndSeeds(r) {
					k.register(s)
				}
			}
		} else {
			k.register(k.daxRegionDev(r)).driver = "cxl_dax_region"
			if r.Registered {
				drv := "device_dax"
				if r.Kmem {
					drv = "kmem"
				} else if r.DaxUnbound {
					drv = ""
				}
				k.register(k.daxDev(r)).driver = drv
			}
		}
	}
}

// sortedRegions returns the live regions in devres registration order.
func (k *Kernel) sortedRegions() []*regionState {
	out := slices.Clone(k.st.Regions)
	slices.SortFunc(out, func(a, b *regionState) int { return a.Order - b.Order })
	return out
}
