package main

import (
	"context"
	"fmt"
	"time"

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

func statusLine(eng *region.Engine, simulated bool, g *guardState) string {
	roots := eng.RootDecoders()
	frozen := 0
	for _, rd := range roots {
		if rd.Frozen {
			frozen++
		}
	}
	s := fmt.Sprintf("serving: %d root decoders (%d frozen), %d regions", len(roots), frozen, len(eng.Regions()))
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

// followStatus keeps systemd's STATUS= line current while serving.
func followStatus(ctx context.Context, eng *region.Engine, simulated bool, g *guardState) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s := statusLine(eng, simulated, g); s != last {
				notifyStatus(s)
				last = s
			}
		}
	}
}
