package region

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/cxlregion/cxlregiond/internal/devname"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
	"github.com/cxlregion/cxlregiond/internal/uevent"
)

// rescan reads the whole tree and reconciles the model with it: sysfs is the
// source of truth. It takes no writer, so it never blocks writes for long.
func (e *Engine) rescan(ctx context.Context, reason string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ticket := e.ticket()
	seq := e.seqnum()
	topo, err := e.fs.Scan()
	if err != nil {
		return err
	}
	var evs []Event
	e.mu.Lock()
	startup := e.topo == nil
	e.setTopoLocked(topo)
	evs = append(evs, e.reconcileRootsLocked(topo)...)
	seen := make(map[string]bool, len(topo.Regions))
	for _, reg := range topo.Regions {
		seen[reg.Name] = true
		evs = append(evs, e.observeRegionLocked(reg, startup, seq, ticket)...)
	}
	for name, r := range e.regions {
		if !seen[name] && !e.creating[name] && r.readTicket < ticket {
			evs = append(evs, e.removeRegionLocked(r)...)
		}
	}
	e.notifyLocked()
	e.mu.Unlock()
	evs = append(evs, Event{Kind: Rescanned, Reason: reason})
	e.hub.publish(evs...)
	return nil
}

// reconcileRootsLocked adds and removes root decoders and freezes or thaws
// their writers: a writer thaws only when a scan finds its root again.
func (e *Engine) reconcileRootsLocked(topo *sysfs.Topology) []Event {
	var evs []Event
	present := make(map[string]bool)
	for _, rd := range topo.RootDecoders {
		present[rd.Name] = true
		rs, ok := e.roots[rd.Name]
		if !ok {
			rs = &rootState{info: rd}
			e.roots[rd.Name] = rs
			if w, err := e.writers.Writer(rd.Name); err == nil {
				if frozen, _ := w.Frozen(); frozen {
					w.Thaw()
					e.log.Info("writer thawed: root decoder is back", "root_decoder", rd.Name)
				}
			}
			evs = append(evs, Event{Kind: RootDecoderAdded, RootDecoder: e.rootInfoLocked(rs)})
			continue
		}
		rs.info = rd
		if w, err := e.writers.Writer(rd.Name); err == nil {
			if frozen, _ := w.Frozen(); frozen {
				w.Thaw()
				e.log.Info("writer thawed: root decoder is back", "root_decoder", rd.Name)
			}
		}
		evs = append(evs, Event{Kind: RootDecoderChanged, RootDecoder: e.rootInfoLocked(rs)})
	}
	for name, rs := range e.roots {
		if present[name] {
			continue
		}
		evs = append(evs, e.freezeLocked(name, errors.New("root decoder no longer in sysfs"))...)
		info := e.rootInfoLocked(rs)
		delete(e.roots, name)
		evs = append(evs, Event{Kind: RootDecoderRemoved, RootDecoder: info})
	}
	return evs
}

// observeRegionLocked applies one reading of a region to the model and
// decides whether it is the generation the model has or a new one.
func (e *Engine) observeRegionLocked(reg sysfs.Region, startup bool, seq, ticket uint64) []Event {
	now := time.Now()
	r, ok := e.regions[reg.Name]
	if ok && r.readTicket > ticket {
		return nil // a newer reading is already applied
	}
	if ok && sameGeneration(r.reg, reg) {
		r.readTicket = ticket
		if reflect.DeepEqual(r.reg, reg) {
			return nil
		}
		r.reg = reg
		r.changedAt = now
		return []Event{{Kind: RegionChanged, Region: e.regionInfoLocked(r)}}
	}
	var evs []Event
	if ok {
		evs = append(evs, e.removeRegionLocked(r)...)
	}
	origin := OriginForeign
	switch {
	case e.creating[reg.Name]:
		origin = OriginDaemon
	case startup && e.made.origin(reg) != "":
		// Made by this daemon before a restart, or not known.
		origin = e.made.origin(reg)
	case startup && reg.Committed:
		origin = OriginKernel
	case startup:
		if _, ok := e.journal.LookupCreate(reg.RootDecoder, reg.Name); ok {
			origin = OriginDaemon
		}
	}
	r = &regionState{reg: reg, gen: e.nextGeneration(), origin: origin, firstSeen: now, changedAt: now, bornSeq: seq, readTicket: ticket, bornTicket: ticket}
	e.lastGen = max(e.lastGen, r.gen)
	e.regions[reg.Name] = r
	return append(evs, Event{Kind: RegionAdded, Region: e.regionInfoLocked(r)})
}

// sameGeneration tells whether a new reading of a name is the region the
// model knows, or a new one that reuses the name. Attributes only move from
// unset to set within a generation; a different root decoder, directory
// inode, uuid or resource means the kernel made a new region.
func sameGeneration(old, cur sysfs.Region) bool {
	if old.RootDecoder != cur.RootDecoder || old.Type != cur.Type {
		return false
	}
	// The directory's inode number settles it: without a uuid (ram) and at
	// the same HPA range a new region would otherwise look like the old.
	if old.Ino != 0 && cur.Ino != 0 && old.Ino != cur.Ino {
		return false
	}
	if old.UUID != "" && old.UUID != cur.UUID {
		return false
	}
	if old.Resource != nil && cur.Resource != nil && *old.Resource != *cur.Resource {
		return false
	}
	return true
}

func (e *Engine) removeRegionLocked(r *regionState) []Event {
	// The generation ends here; goneLocked derives that from its absence.
	delete(e.regions, r.reg.Name)
	info := e.regionInfoLocked(r)
	return []Event{{Kind: RegionRemoved, Region: info}}
}

// goneLocked tells whether a generation of a name has ended: numbered by
// this engine and no longer the name's live one. Generations are numbered
// in increasing order across every name and are never reused, so an ended
// one never becomes live again and the engine keeps no record of it (a
// set of ended generations grew with every region ever seen). A number
// that belonged to another name also reads as gone: for a delete request
// both mean a stale request, answered NotFound without a write.
func (e *Engine) goneLocked(name string, gen uint64) bool {
	if gen == 0 || gen > e.lastGen {
		return false
	}
	r := e.regions[name]
	return r == nil || r.gen != gen
}

// refreshRegion re-reads one region from sysfs into the model. It returns
// the model's view afterwards, or ErrNotFound when the region is gone.
func (e *Engine) refreshRegion(name string) (*regionState, error) {
	ticket := e.ticket()
	seq := e.seqnum()
	reg, err := e.fs.ReadRegion(name)
	e.mu.Lock()
	var evs []Event
	defer func() {
		e.notifyLocked()
		e.mu.Unlock()
		e.hub.publish(evs...)
	}()
	if err != nil {
		if !isNotExist(err) {
			return nil, err
		}
		if r, ok := e.regions[name]; ok && !e.creating[name] && r.readTicket < ticket {
			evs = e.removeRegionLocked(r)
		}
		return nil, fmt.Errorf("region %s: %w", name, ErrNotFound)
	}
	evs = e.observeRegionLocked(reg, false, seq, ticket)
	return e.regions[name], nil
}

// followUevents applies uevents to the model until ctx ends. Lost events
// ask Run for a full rescan.
func (e *Engine) followUevents(ctx context.Context, needRescan chan<- string) {
	for {
		ev, err := e.cfg.Events.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			reason := "error"
			var re *uevent.ResyncError
			switch {
			case errors.As(err, &re) && re.Err == nil:
				reason = "gap" // SEQNUM skipped
			case errors.Is(err, uevent.ErrResync):
				reason = "overflow"
			}
			e.log.Warn("uevents lost, rescanning", "err", err)
			select {
			case needRescan <- reason:
			default:
			}
			if reason == "error" {
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
			continue
		}
		e.applyUevent(ctx, ev, needRescan)
	}
}

func (e *Engine) applyUevent(ctx context.Context, ev uevent.Event, needRescan chan<- string) {
	e.hub.publish(Event{Kind: UeventReceived, Uevent: ev})
	name := ev.Name()
	switch {
	case ev.Subsystem == "cxl" && ev.DevType == "cxl_region":
		switch ev.Action {
		case uevent.Remove:
			e.mu.Lock()
			var evs []Event
			if r, ok := e.regions[name]; ok && !e.creating[name] && (r.bornSeq == 0 || ev.Seqnum > r.bornSeq) {
				evs = e.removeRegionLocked(r)
			}
			e.notifyLocked()
			e.mu.Unlock()
			e.hub.publish(evs...)
		case uevent.Add:
			// The remove of the name's previous holder, if any, came first
			// and ended that generation; an add for a name the model holds
			// is the model having read the region before its uevent
			// arrived. Lost events are caught by the SEQNUM check.
			e.refreshQuietly(name)
		default:
			e.refreshQuietly(name)
		}
	case ev.Subsystem == "cxl" && (ev.DevType == "cxl_pmem_region" || ev.DevType == "cxl_dax_region"):
		e.refreshQuietly(parentName(ev.DevPath))
	case ev.Subsystem == "dax":
		// A dax device below a region (ram: regionN/dax_regionN/daxN.M;
		// pmem: the nd region regionN/daxN.M/daxN.M): kmem bound or let go.
		e.refreshQuietly(regionInPath(ev.DevPath))
	case ev.Subsystem == "memory":
		// A memory block added, onlined, offlined or removed: refresh the
		// regions whose range it may lie in.
		e.refreshMemoryRegions(ev.Name())
	case ev.Subsystem == "nd" && ev.DevType == "nd_pmem":
		// The nd region carries the CXL region's name (ND_REGION_CXL).
		e.refreshQuietly(name)
	case ev.Subsystem == "cxl" && ev.DevType == "cxl_decoder_root" && ev.Action == uevent.Remove:
		e.freeze(name, fmt.Errorf("root decoder %s removed by the kernel", name))
	case ev.Subsystem == "cxl" && ev.DevType == "cxl_port" && (ev.Action == uevent.Remove || ev.Action == uevent.Unbind):
		e.freezeBelow(ev.DevPath, fmt.Errorf("port %s %s", name, ev.Action))
	case ev.Subsystem == "platform" && (ev.Action == uevent.Unbind || ev.Action == uevent.Remove):
		e.freezeBelow(ev.DevPath, fmt.Errorf("cxl_acpi %s %s", name, ev.Action))
	case ev.Action == uevent.Add && ev.Subsystem == "cxl" && (ev.DevType == "cxl_decoder_root" || ev.DevType == "cxl_port"):
		select {
		case needRescan <- "thaw":
		default:
		}
	case ev.Action == uevent.Bind && ev.Subsystem == "platform":
		select {
		case needRescan <- "thaw":
		default:
		}
	}
}

// ticket hands out the order of a reading about to start.
func (e *Engine) ticket() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tickets++
	return e.tickets
}

// seqnum reads the kernel's last uevent SEQNUM; 0 when it cannot.
func (e *Engine) seqnum() uint64 {
	n, err := e.fs.UeventSeqnum()
	if err != nil {
		return 0
	}
	return n
}

func (e *Engine) refreshQuietly(name string) {
	if !devname.IsRegion(name) {
		return
	}
	if _, err := e.refreshRegion(name); err != nil && !errors.Is(err, ErrNotFound) {
		e.log.Debug("refresh region", "region", name, "err", err)
	}
}

// regionInPath is the last path component that is a region name, or "".
func regionInPath(devpath string) string {
	comps := strings.Split(devpath, "/")
	for i := len(comps) - 1; i >= 0; i-- {
		if devname.IsRegion(comps[i]) {
			return comps[i]
		}
	}
	return ""
}

// refreshMemoryRegions re-reads the regions whose range holds a memory
// block (memoryN: N × block size); every region with a range when the
// block size is not known yet.
func (e *Engine) refreshMemoryRegions(block string) {
	idx, err := strconv.ParseUint(strings.TrimPrefix(block, "memory"), 10, 64)
	if !sysfs.ValidMemoryBlockName(block) || err != nil {
		return
	}
	var names []string
	e.mu.Lock()
	for name, r := range e.regions {
		if r.reg.Resource == nil {
			continue
		}
		if bs := r.reg.Memory.BlockSize; bs != 0 {
			start := idx * bs
			if start+bs <= *r.reg.Resource || start >= *r.reg.Resource+r.reg.Size {
				continue
			}
		}
		names = append(names, name)
	}
	e.mu.Unlock()
	for _, name := range names {
		e.refreshQuietly(name)
	}
}

func parentName(devpath string) string {
	devpath = strings.TrimSuffix(devpath, "/")
	i := strings.LastIndexByte(devpath, '/')
	if i <= 0 {
		return ""
	}
	parent := devpath[:i]
	return parent[strings.LastIndexByte(parent, '/')+1:]
}

// nextGeneration numbers a new generation. If the journal cannot reserve
// numbers the number is still unique within this run; the failure is
// surfaced, since a restart could then hand it out again.
func (e *Engine) nextGeneration() uint64 {
	gen, err := e.journal.NextGeneration()
	if err != nil {
		e.journalFailed("generation", "", err)
	}
	return gen
}
