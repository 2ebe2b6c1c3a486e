package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cxlregion/cxlregiond/internal/guard"
	"github.com/cxlregion/cxlregiond/internal/metrics"
	"github.com/cxlregion/cxlregiond/internal/region"
)

// startGuard starts the fanotify guard as --guard asks, and the goroutine
// that keeps its marks on the engine's root decoders (owned by guardWG,
// stopped by stopGuardMarks). "auto" runs it when the host supports it;
// "on" fails the start if it cannot run. The simulator has no files for
// fanotify to mark, so the guard never runs on it.
func (d *cxlregiond) startGuard() error {
	o, log := d.opts, d.log
	defer func() { d.metrics.SetGuardActive(d.guardState.active()) }()
	if o.guard == "off" {
		log.Info("guard off: processes that bypass the daemon are not serialized")
		return nil
	}
	if d.sim != nil {
		if o.guard == "on" {
			return errors.New("--guard=on needs a real /sys: the simulator has no files for fanotify to guard (use --guard=auto or off)")
		}
		log.Info("guard off: not available on the simulator")
		return nil
	}
	g, err := guard.New(guard.Config{
		Writers:   guard.LockWriters(d.reg),
		SysfsRoot: o.sysfsRoot,
		Settled:   d.eng.WaitRootSettled,
		RefuseDelete: func() func(string) error {
			if !o.guardRefuseOnlineMemory {
				return nil
			}
			return d.eng.RootMemoryOnline
		}(),
		MemoryTargets: func() []guard.Target {
			blocks := map[string][]string{}
			for _, r := range d.eng.Regions() {
				for _, b := range r.Memory.Blocks {
					blocks[r.RootDecoder] = append(blocks[r.RootDecoder], b.Name)
				}
			}
			return guard.MemoryBlockTargets(o.sysfsRoot, blocks)
		},
		Observer: d.metrics.ObserveGuard,
		Logger:   log,
	})
	if err != nil {
		if o.guard == "auto" && errors.Is(err, guard.ErrUnsupported) {
			log.Warn("guard not available on this host: processes that bypass the daemon are not serialized", "reason", err)
			return nil
		}
		return fmt.Errorf("guard: %w", err)
	}
	d.guard = g
	g.NotifyChanges(d.guardState.changed)
	d.guardState.set(g)
	var ctx context.Context
	ctx, d.stopGuardMarks = context.WithCancel(d.engineCtx)
	// Subscribe before the first update, so that no root decoder added in
	// between is missed.
	events, unsubscribe := d.eng.Subscribe(ctx)
	updateGuardMarks(g, d.eng, d.metrics, log)
	d.guardWG.Go(func() {
		defer unsubscribe()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-events:
				if !ok {
					return
				}
				switch ev.Kind {
				case region.RootDecoderAdded, region.RootDecoderRemoved, region.Rescanned, region.SubscriberResync:
					updateGuardMarks(g, d.eng, d.metrics, log)
				case region.RegionAdded, region.RegionChanged, region.RegionRemoved:
					// Memory blocks come and go with a region's memory.
					updateGuardMarks(g, d.eng, d.metrics, log)
				}
			}
		}
	})
	log.Info("guard on: other processes' opens of the region control files wait for the root decoder's writer")
	return nil
}

// updateGuardMarks puts the guard's marks on the engine's root decoders.
func updateGuardMarks(g *guard.Guard, eng *region.Engine, m *metrics.Metrics, log *slog.Logger) {
	var names []string
	for _, rd := range eng.RootDecoders() {
		names = append(names, rd.Name)
	}
	if err := g.Update(names); err != nil {
		// The guard logs which files it could not mark when that changes,
		// and is not Active while any is unmarked.
		log.Debug("guard: update marks", "err", err)
	}
	m.SetGuardActive(g.Active())
}
