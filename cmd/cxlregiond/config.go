package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/cxlregion/cxlregiond/internal/metrics"
)

// settings are the daemon's tunables: defaults, then the config file, then
// the command line (a flag given on the command line always wins).
type settings struct {
	LogLevel       slog.Level
	SettleWindow   time.Duration
	BoundQuiet     time.Duration
	DefaultTimeout time.Duration
	RescanInterval time.Duration
	MetricsListen  string
}

// A config key is its flag's name with '_' for '-'.
const (
	keyLogLevel       = "log_level"
	keySettleWindow   = "settle_window"
	keyBoundQuiet     = "bound_quiet"
	keyDefaultTimeout = "default_timeout"
	keyRescanInterval = "rescan_interval"
	keyMetricsListen  = "metrics_listen"
)

// configKeys parse each key into settings. Every key takes effect when the
// config file changes (reload.go); what only a restart changes (state and
// lock directories, the guard) is a flag only.
var configKeys = map[string]func(s *settings, v string) error{
	keyLogLevel: func(s *settings, v string) error {
		return s.LogLevel.UnmarshalText([]byte(v))
	},
	keySettleWindow:   durationSetter(func(s *settings) *time.Duration { return &s.SettleWindow }),
	keyBoundQuiet:     durationSetter(func(s *settings) *time.Duration { return &s.BoundQuiet }),
	keyDefaultTimeout: durationSetter(func(s *settings) *time.Duration { return &s.DefaultTimeout }),
	keyRescanInterval: durationSetter(func(s *settings) *time.Duration { return &s.RescanInterval }),
	keyMetricsListen: func(s *settings, v string) error {
		if err := checkMetricsListen(v); err != nil {
			return err
		}
		s.MetricsListen = v
		return nil
	},
}

// checkMetricsListen accepts "off" or host:port with a host: a bare port
// would listen on every interface, which must be asked for by name.
func checkMetricsListen(v string) error {
	if v == "off" {
		return nil
	}
	host, _, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf(`want host:port (e.g. %s) or "off"`, metrics.DefaultAddr)
	}
	if host == "" {
		return fmt.Errorf("no host: give 127.0.0.1 for loopback, 0.0.0.0 or [::] for every interface")
	}
	return nil
}

func durationSetter(field func(*settings) *time.Duration) func(*settings, string) error {
	return func(s *settings, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		if d < 0 {
			return fmt.Errorf("%s is negative", v)
		}
		*field(s) = d
		return nil
	}
}

// parseConfig reads "key = value" lines; '#' starts a comment line. An
// unknown or repeated key is an error naming its line: a typo must not
// silently leave a default in place.
func parseConfig(r io.Reader) (map[string]string, error) {
	kv := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want key = value, got %q", n, line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if _, known := configKeys[key]; !known {
			return nil, fmt.Errorf("line %d: unknown key %q (known: %s)", n, key, strings.Join(sortedKeys(configKeys), ", "))
		}
		if _, dup := kv[key]; dup {
			return nil, fmt.Errorf("line %d: %s given twice", n, key)
		}
		kv[key] = value
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return kv, nil
}

// apply sets the keys of kv, except those in skip (given as flags).
func (s *settings) apply(kv map[string]string, skip map[string]bool) error {
	for _, key := range sortedKeys(kv) {
		if skip[key] {
			continue
		}
		if err := configKeys[key](s, kv[key]); err != nil {
			return fmt.Errorf("%s = %s: %w", key, kv[key], err)
		}
	}
	return nil
}

// changedKeys lists the keys whose values differ between two settings.
func changedKeys(a, b settings) []string {
	var out []string
	if a.LogLevel != b.LogLevel {
		out = append(out, keyLogLevel)
	}
	if a.SettleWindow != b.SettleWindow {
		out = append(out, keySettleWindow)
	}
	if a.BoundQuiet != b.BoundQuiet {
		out = append(out, keyBoundQuiet)
	}
	if a.DefaultTimeout != b.DefaultTimeout {
		out = append(out, keyDefaultTimeout)
	}
	if a.RescanInterval != b.RescanInterval {
		out = append(out, keyRescanInterval)
	}
	if a.MetricsListen != b.MetricsListen {
		out = append(out, keyMetricsListen)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
