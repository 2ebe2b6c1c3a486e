package main

import (
	"strings"
	"testing"
	"time"
)

// FuzzConfig feeds arbitrary files to the config parser and applies what
// it accepts over the defaults, as a start or a reload does. Nothing may
// panic; an accepted file names only known keys, once each; every
// duration accepted is non-negative; what a key was given is what the
// settings hold.
func FuzzConfig(f *testing.F) {
	for _, s := range []string{
		"", "# tunables\n\nlog_level = debug\n  settle_window=5s  \n",
		"metrics_listen = [::1]:9477\n", "log_level = info\nlog_level = debug\n",
		"settle_window = -1s\n", "bound_quiet = 9223372036854775807ns\n", "rescan_interval = 1e9h\n",
		"default_timeout = 1h\r\n", "log_level = \x00\n", "=\n", "key\n", strings.Repeat("#", 70000) + "\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, file string) {
		kv, err := parseConfig(strings.NewReader(file))
		if err != nil {
			return
		}
		for k := range kv {
			if configKeys[k] == nil {
				t.Fatalf("accepted unknown key %q", k)
			}
		}
		s := settings{SettleWindow: 2 * time.Second, BoundQuiet: 100 * time.Millisecond, DefaultTimeout: time.Minute}
		if err := s.apply(kv, nil); err != nil {
			return
		}
		for _, d := range []time.Duration{s.SettleWindow, s.BoundQuiet, s.DefaultTimeout, s.RescanInterval} {
			if d < 0 {
				t.Fatalf("%q applied a negative duration: %+v", file, s)
			}
		}
		if v, ok := kv[keyMetricsListen]; ok && s.MetricsListen != v {
			t.Fatalf("metrics_listen %q applied as %q", v, s.MetricsListen)
		}
	})
}
