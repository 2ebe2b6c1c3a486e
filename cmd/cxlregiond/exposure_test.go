package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/cxlregion/cxlregiond/internal/metrics"
)

// TestMetricsListenLoopbackByDefault: without --metrics-listen or a
// metrics_listen key, the daemon serves /metrics on a loopback address
// only; neither the shipped config nor the flag default opens it to the
// network.
//
// Mutation: make the flag's default ":9477" (or metrics.DefaultAddr
// "0.0.0.0:9477") and this fails.
func TestMetricsListenLoopbackByDefault(t *testing.T) {
	addr := newRootCommand().Flags().Lookup("metrics-listen").DefValue
	for _, a := range []string{addr, metrics.DefaultAddr} {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatalf("default metrics address %q: %v", a, err)
		}
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			t.Errorf("default metrics address %q is not a loopback address", a)
		}
	}
	// A config file without the key leaves the default in place.
	dir := t.TempDir()
	path := filepath.Join(dir, "cxlregiond.conf")
	if err := os.WriteFile(path, []byte("log_level = info\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := loadSettings(path, false, settings{MetricsListen: addr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.MetricsListen != addr {
		t.Errorf("a config file without metrics_listen moved the listener to %q", s.MetricsListen)
	}
}
