package service

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/region"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// sync re-reads the engine's model and brings the exported objects in line
// with it: one batch, signals only for what changed. A region whose
// generation changed is removed and added again: it is another region that
// reuses the name.
//
// A caller is covered by any sync that reads the engine after it asked:
// calls that queue while one runs are answered by the next one alone, not
// one each. Each mutating call syncs before it answers (its caller must
// see the result), so 1000 concurrent DeleteRegion calls made 1000 full
// re-reads one after the other (bench BenchmarkBusStorm).
func (s *Service) sync() {
	ticket := s.syncAsked.Add(1)
	s.tree.updateMu.Lock()
	defer s.tree.updateMu.Unlock()
	if s.syncCovered >= ticket {
		return // a sync that started after this call asked has run
	}
	// Every call that has asked so far is covered by this one: it reads
	// the engine from here on.
	s.syncCovered = s.syncAsked.Load()
	regions := s.engine.Regions()
	roots := s.engine.RootDecoders()
	manager := s.managerProps()
	s.setSettleAt(regions)
	s.tree.applyAndEmit(func(tx *treeTx) {
		wantRegions := map[dbus.ObjectPath]props{}
		for _, r := range regions {
			if p, ok := api.RegionPath(r.Name); ok {
				wantRegions[p] = regionProps(r)
			}
		}
		wantRoots := map[dbus.ObjectPath]props{}
		for _, rd := range roots {
			if p, ok := api.RootDecoderPath(rd.Name); ok {
				wantRoots[p] = rootDecoderProps(rd)
			}
		}
		// Removals first, regions before their root decoders; additions
		// after, root decoders before their regions.
		for _, p := range tx.paths(api.RegionsPath + "/") {
			want, ok := wantRegions[p]
			if !ok {
				tx.remove(p)
				continue
			}
			if gen, ok := tx.property(p, api.RegionInterface, api.PropGeneration); ok && !sameVariant(gen, want[api.PropGeneration]) {
				tx.remove(p)
			}
		}
		for _, p := range tx.paths(api.RootDecodersPath + "/") {
			if _, ok := wantRoots[p]; !ok {
				tx.remove(p)
			}
		}
		for _, p := range sortedPaths(wantRoots) {
			tx.set(p, object{api.RootDecoderInterface: wantRoots[p]})
		}
		for _, p := range sortedPaths(wantRegions) {
			tx.set(p, object{api.RegionInterface: wantRegions[p]})
		}
		tx.set(api.ManagerPath, object{api.ManagerInterface: manager})
	})
}

// setSettleAt keeps the first SettleCheckAt of regions, the next moment
// sync must run with no event, and tells follow when it moved. The caller
// holds tree.updateMu.
func (s *Service) setSettleAt(regions []region.RegionInfo) {
	var first time.Time
	for _, r := range regions {
		if at := r.SettleCheckAt; !at.IsZero() && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	if first.Equal(s.settleAt) {
		return
	}
	s.settleAt = first
	select {
	case s.rearm <- struct{}{}:
	default: // follow has yet to take an earlier one, and reads the latest
	}
}

// nextSettle is the moment the last sync said a region settles by time
// alone; zero if none.
func (s *Service) nextSettle() time.Time {
	s.tree.updateMu.Lock()
	defer s.tree.updateMu.Unlock()
	return s.settleAt
}

// syncRoots re-reads the root decoders alone and updates their exported
// properties: a writer's queue depth moves with every operation and every
// open the guard holds, and re-reading every region for it would make each
// of them cost a full sync. Root decoders that appear or go come with
// other events, which make a full sync.
func (s *Service) syncRoots() {
	s.tree.updateMu.Lock()
	defer s.tree.updateMu.Unlock()
	roots := s.engine.RootDecoders()
	s.tree.applyAndEmit(func(tx *treeTx) {
		for _, rd := range roots {
			if p, ok := api.RootDecoderPath(rd.Name); ok {
				tx.patch(p, api.RootDecoderInterface, rootDecoderProps(rd))
			}
		}
	})
}

// syncGuard re-reads the guard's properties alone (Config.GuardChanged).
func (s *Service) syncGuard() {
	s.tree.updateMu.Lock()
	defer s.tree.updateMu.Unlock()
	guard := s.guardProps()
	s.tree.applyAndEmit(func(tx *treeTx) { tx.patch(api.ManagerPath, api.ManagerInterface, guard) })
}

// sortedPaths is m's paths in natural order (region2 before region10).
// A sort, not an insertion sort: sync runs it over every region on each
// model change (and on each tick of a one-second poll before), and with
// 4096 regions an insertion sort of map-ordered paths made ~4 million
// comparisons a sync (bench BenchmarkStartup, BenchmarkIdle).
func sortedPaths(m map[dbus.ObjectPath]props) []dbus.ObjectPath {
	out := make([]dbus.ObjectPath, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b dbus.ObjectPath) int {
		switch {
		case api.NaturalLess(string(a), string(b)):
			return -1
		case api.NaturalLess(string(b), string(a)):
			return 1
		}
		return 0
	})
	return out
}

func (s *Service) managerProps() props {
	features := s.engine.KernelFeatures()
	if features == nil {
		features = []string{}
	}
	caps := s.engine.MemdevCapacities()
	memdevs := make(map[string]map[string]uint64, len(caps))
	decoders := map[string]map[string]dbus.Variant{}
	for _, c := range caps {
		memdevs[c.Memdev] = map[string]uint64{"total": c.Total, "allocated": c.Allocated, "free": c.Free, "stranded": c.Stranded}
		for _, d := range c.Decoders {
			decoders[d.Name] = map[string]dbus.Variant{
				"memdev": dbus.MakeVariant(d.Memdev), "mode": dbus.MakeVariant(d.Mode), "dpa_size": dbus.MakeVariant(d.DPASize),
				"region": dbus.MakeVariant(d.Region), "stranded": dbus.MakeVariant(d.Stranded),
			}
		}
	}
	p := props{
		api.PropMemdevCapacity:   dbus.MakeVariant(memdevs),
		api.PropEndpointDecoders: dbus.MakeVariant(decoders),
		api.PropVersion:          dbus.MakeVariant(s.cfg.Version),
		api.PropKernelFeatures:   dbus.MakeVariant(features),
		api.PropSimulated:        dbus.MakeVariant(s.cfg.Simulated),
		api.PropLockDirectory:    dbus.MakeVariant(s.cfg.LockDirectory),
	}
	maps.Copy(p, s.guardProps())
	return p
}

// guardProps is the Manager's properties that come from the guard.
func (s *Service) guardProps() props {
	guard := false
	if s.cfg.GuardActive != nil {
		guard = s.cfg.GuardActive()
	}
	var guardQueue uint32
	if s.cfg.GuardQueueDepth != nil {
		guardQueue = uint32(max(s.cfg.GuardQueueDepth(), 0))
	}
	return props{
		api.PropGuardQueue:  dbus.MakeVariant(guardQueue),
		api.PropGuardActive: dbus.MakeVariant(guard),
	}
}

func regionProps(r region.RegionInfo) props {
	return props{
		api.PropName:                  dbus.MakeVariant(r.Name),
		api.PropRootDecoder:           dbus.MakeVariant(r.RootDecoder),
		api.PropType:                  dbus.MakeVariant(r.Type),
		api.PropSize:                  dbus.MakeVariant(r.Size),
		api.PropResource:              dbus.MakeVariant(r.Resource),
		api.PropUUID:                  dbus.MakeVariant(r.UUID),
		api.PropInterleaveWays:        dbus.MakeVariant(nonNegative(r.InterleaveWays)),
		api.PropInterleaveGranularity: dbus.MakeVariant(nonNegative(r.InterleaveGranularity)),
		api.PropTargets:               dbus.MakeVariant(nonNil(r.Targets)),
		api.PropMemdevs:               dbus.MakeVariant(nonNil(r.Memdevs)),
		api.PropState:                 dbus.MakeVariant(string(r.State)),
		api.PropGeneration:            dbus.MakeVariant(r.Generation),
		api.PropOrigin:                dbus.MakeVariant(string(r.Origin)),
		api.PropSettled:               dbus.MakeVariant(r.Settled),
		api.PropDaxMode:               dbus.MakeVariant(daxMode(r.Memory)),
		api.PropTargetNode:            dbus.MakeVariant(targetNode(r.Memory)),
		api.PropMemoryBlocks:          dbus.MakeVariant(uint32(len(r.Memory.Blocks))),
		api.PropOnlineMemoryBlocks:    dbus.MakeVariant(uint32(len(r.Memory.OnlineBlocks()))),
		api.PropOnlineMemoryBytes:     dbus.MakeVariant(r.Memory.OnlineBytes()),
		api.PropMovable:               dbus.MakeVariant(movable(r.Memory)),
	}
}

// daxMode is daxctl's mode of the region's dax devices: system-ram when
// one is bound to kmem, devdax when one is a character device.
func daxMode(m sysfs.RegionMemory) string {
	mode := ""
	for _, d := range m.Dax {
		switch {
		case d.SystemRAM():
			return "system-ram"
		case d.Driver == sysfs.DaxDriverDevice:
			mode = "devdax"
		}
	}
	return mode
}

// targetNode is the node of the region's memory: its online blocks', else
// its dax devices' target_node, else -1.
func targetNode(m sysfs.RegionMemory) int32 {
	if nodes := m.Nodes(); len(nodes) > 0 {
		return int32(nodes[0])
	}
	for _, d := range m.Dax {
		if d.TargetNode >= 0 {
			return int32(d.TargetNode)
		}
	}
	return -1
}

func movable(m sysfs.RegionMemory) bool {
	online := m.OnlineBlocks()
	for _, b := range online {
		if !b.Movable() {
			return false
		}
	}
	return len(online) > 0
}

func rootDecoderProps(rd region.RootDecoderInfo) props {
	return props{
		api.PropName:                  dbus.MakeVariant(rd.Name),
		api.PropPort:                  dbus.MakeVariant(rd.Port),
		api.PropPmemCapable:           dbus.MakeVariant(rd.CapPmem),
		api.PropRAMCapable:            dbus.MakeVariant(rd.CapRAM),
		api.PropSize:                  dbus.MakeVariant(rd.Size),
		api.PropFreeCapacity:          dbus.MakeVariant(rd.FreeCapacity),
		api.PropInterleaveWays:        dbus.MakeVariant(nonNegative(rd.InterleaveWays)),
		api.PropInterleaveGranularity: dbus.MakeVariant(nonNegative(rd.InterleaveGranularity)),
		api.PropTargets:               dbus.MakeVariant(nonNil(rd.Targets)),
		api.PropFrozen:                dbus.MakeVariant(rd.Frozen),
		api.PropFrozenReason:          dbus.MakeVariant(oneLine(rd.FrozenReason)),
		api.PropQueueDepth:            dbus.MakeVariant(nonNegative(rd.QueueDepth)),
	}
}

func nonNegative(n int) uint32 {
	if n < 0 {
		return 0
	}
	return uint32(n)
}

// nonNil keeps an empty list an empty "as" rather than a nil the encoder
// would still send, but DeepEqual would tell apart from []string{}.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return append([]string(nil), s...)
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
