package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cxlregion/cxlregiond/internal/guard"
	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/metrics"
	"github.com/cxlregion/cxlregiond/internal/region"
)

// startGuard starts the fanotify guard as --guard asks and keeps its marks
// on the engine's root decoders until ctx ends. "auto" runs it when the
// host supports it; "on" fails the start if it cannot run. The simulator
// has no files for fanotify to mark, so the guard never runs on it.
func startGuard(ctx context.Context, o *daemonOptions, simulated bool, reg *lock.Registry,
	eng *region.Engine, m *metrics.Metrics, log *slog.Logger) (*guard.Guard, error) {
	if o.guard == "off" {
		log.Info("guard off: processes that bypass the daemon are not serialized")
		return nil, nil
	}
	if simulated {
		if o.guard == "on" {
			return nil, errors.New("--guard=on needs a real /sys: the simulator has no files for fanotify to guard (use --guard=auto or off)")
		}
		log.Info("guard off: not available on the simulator")
		return nil, nil
	}
	g, err := guard.New(guard.Config{
		Writers:   guard.LockWriters(reg),
		SysfsRoot: o.sysfsRoot,
		Settled:   eng.WaitRootSettled,
		RefuseDelete: func() func(string) error {
			if !o.guardRefuseOnlineMemory {
				return nil
			}
			return eng.RootMemoryOnline
		}(),
		MemoryTargets: func() []guard.Target {
			blocks := map[string][]string{}
			for _, r := range eng.Regions() {
				for _, b := range r.Memory.Blocks {
					blocks[r.RootDecoder] = append(blocks[r.RootDecoder], b.Name)
				}
			}
			return guard.MemoryBlockTargets(o.sysfsRoot, blocks)
		},
		Observer: m.ObserveGuard,
		Logger:   log,
	})
	if err != nil {
		if o.guard == "auto" && errors.Is(err, guard.ErrUnsupported) {
			log.Warn("guard not available on this host: processes that bypass the daemon are not serialized", "reason", err)
			return nil, nil
		}
		return nil, fmt.Errorf("guard: %w", err)
	}
	events, unsubscribe := eng.Subscribe(ctx)
	update := func() {
		var names []string
		for _, rd := range eng.RootDecoders() {
			names = append(names, rd.Name)
		}
		if err := g.Update(names); err != nil {
			log.Warn("guard: update marks", "err", err)
		}
		m.SetGuardActive(g.Active())
	}
	update()
	go func() {
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
				case region.RootDecoderAdded, region.RootDecoderRemoved, region.Rescanned:
					update()
				case region.RegionAdded, region.RegionChanged, region.RegionRemoved:
					// Memory blocks come and go with a region's memory.
					update()
				}
			}
		}
	}()
	log.Info("guard on: other processes' opens of the region control files wait for the root decoder's writer")
	return g, nil
}
