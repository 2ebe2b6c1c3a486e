package main

import (
	"context"
	"fmt"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/cxlregion/cxlregiond/internal/region"
)

// sd_notify messages; without NOTIFY_SOCKET (not under systemd) they do
// nothing.

func notifyStatus(status string) { _, _ = daemon.SdNotify(false, "STATUS="+status) }

// notifyReady tells systemd the daemon is ready: the first scan is done
// and the bus name is owned.
func notifyReady(status string) {
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS="+status)
}

// notifyReloading and notifyReloaded bracket a reload asked for with SIGHUP.
func notifyReloading() { _, _ = daemon.SdNotify(false, daemon.SdNotifyReloading) }
func notifyReloaded()  { _, _ = daemon.SdNotify(false, daemon.SdNotifyReady) }

func notifyStopping() {
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping+"\nSTATUS=stopping: letting running operations finish")
}

// statusLine is the STATUS= line: the root decoders (how many frozen), the
// number of regions, the guard, the simulator.
func statusLine(eng *region.Engine, regions int, simulated bool, g *guardState) string {
	roots := eng.RootDecoders()
	frozen := 0
	for _, rd := range roots {
		if rd.Frozen {
			frozen++
		}
	}
	s := fmt.Sprintf("serving: %d root decoders (%d frozen), %d regions", len(roots), frozen, regions)
	if g.active() {
		s += ", guard on"
	} else {
		s += ", guard off"
	}
	if simulated {
		s += ", simulated kernel"
	}
	return s
}

// followStatus keeps systemd's STATUS= line current while serving: it is
// worked out again after the engine events that can change it (regions or
// root decoders added or removed, a writer frozen or thawed, a rescan) and
// when the guard says it changed, never on a timer (an idle daemon does no
// work; a 2 s ticker read every region before). The regions are counted
// again only when one came or went: a writer's queue moves on every
// operation, and reading 4096 regions for it would cost more than the
// operation. events is the engine's, subscribed by the caller.
func followStatus(ctx context.Context, events <-chan region.Event, guardChanged <-chan struct{}, eng *region.Engine, simulated bool, g *guardState) {
	last := ""
	regions := -1
	for {
		var need statusNeed
		select {
		case <-ctx.Done():
			return
		case <-guardChanged:
			need = statusLineOnly
		case ev, ok := <-events:
			if !ok {
				return
			}
			need = drainStatus(events, statusNeedOf(ev))
		}
		if need == statusNone {
			continue
		}
		if need == statusRecount || regions < 0 {
			regions = len(eng.Regions())
		}
		if s := statusLine(eng, regions, simulated, g); s != last {
			notifyStatus(s)
			last = s
		}
	}
}

// statusNeed is what an event asks of the status line.
type statusNeed int

const (
	statusNone     statusNeed = iota
	statusLineOnly            // the root decoders or the guard changed
	statusRecount             // regions came or went: count them again
)

func statusNeedOf(ev region.Event) statusNeed {
	switch ev.Kind {
	case region.RegionAdded, region.RegionRemoved, region.Rescanned, region.SubscriberResync:
		return statusRecount
	case region.RootDecoderAdded, region.RootDecoderRemoved, region.RootDecoderChanged:
		return statusLineOnly
	}
	return statusNone
}

// drainStatus takes every event already queued, so a burst costs one
// status line, and returns the most any of them (and need) asks.
func drainStatus(events <-chan region.Event, need statusNeed) statusNeed {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return need
			}
			need = max(need, statusNeedOf(ev))
		default:
			return need
		}
	}
}
