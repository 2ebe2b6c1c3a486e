package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/cxlregion/cxlregiond/internal/metrics"
)

// listenMetrics opens the metrics listener, or returns nil for "off". The
// daemon opens it before it reports READY, so an address in use or without
// a host stops the start with the reason (systemd shows the failure)
// instead of a daemon that runs on without metrics.
func listenMetrics(ctx context.Context, addr string) (net.Listener, error) {
	if addr == "off" {
		return nil, nil
	}
	if err := checkMetricsListen(addr); err != nil {
		return nil, fmt.Errorf("metrics listener %q: %w", addr, err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	return ln, nil
}

// serveMetrics serves /metrics on ln (nil: nothing) until ctx ends. When a
// reloaded config names a new address, it opens that first and moves only
// if it could: a failed move is logged and the old listener keeps serving.
func serveMetrics(ctx context.Context, m *metrics.Metrics, ln net.Listener, next <-chan string, log *slog.Logger) {
	for {
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func(ln net.Listener) {
			defer close(done)
			if ln == nil {
				log.Info("metrics listener off")
				return
			}
			log.Info("metrics listening", "addr", ln.Addr().String())
			if err := m.ServeListener(runCtx, ln); err != nil {
				log.Error("metrics listener stopped", "addr", ln.Addr().String(), "err", err)
			}
		}(ln)
		for moved := false; !moved; {
			select {
			case <-ctx.Done():
				stop()
				<-done
				return
			case addr := <-next:
				newLn, err := listenMetrics(ctx, addr)
				if err != nil {
					log.Error("metrics address not changed", "addr", addr, "err", err)
					continue
				}
				stop()
				<-done
				ln, moved = newLn, true
			}
		}
	}
}
