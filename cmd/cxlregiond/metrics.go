package main

import (
	"context"
	"log/slog"

	"github.com/cxlregion/cxlregiond/internal/metrics"
)

// serveMetrics serves /metrics on addr, moving to a new address whenever
// one arrives (a reloaded config), until ctx ends. "off" or "" serves
// nothing. A listener that fails (address in use) is logged; the daemon
// keeps running: metrics are not worth refusing to serialize writes.
func serveMetrics(ctx context.Context, m *metrics.Metrics, addr string, next <-chan string, log *slog.Logger) {
	for {
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func(addr string) {
			defer close(done)
			if addr == "" || addr == "off" {
				log.Info("metrics listener off")
				return
			}
			log.Info("metrics listening", "addr", addr)
			if err := m.Serve(runCtx, addr); err != nil {
				log.Error("metrics listener", "addr", addr, "err", err)
			}
		}(addr)
		select {
		case <-ctx.Done():
			stop()
			<-done
			return
		case addr = <-next:
			stop()
			<-done
		}
	}
}
