package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{"empty", "", map[string]string{}, ""},
		{"keys, comments, blanks", "# tunables\n\nlog_level = debug\n  settle_window=5s  \n", map[string]string{"log_level": "debug", "settle_window": "5s"}, ""},
		{"value with =", "metrics_listen = [::1]:9477\n", map[string]string{"metrics_listen": "[::1]:9477"}, ""},
		{"unknown key", "log_level = info\nsettle = 1s\n", nil, `line 2: unknown key "settle"`},
		{"repeated key", "log_level = info\nlog_level = debug\n", nil, "line 2: log_level given twice"},
		{"no =", "log_level debug\n", nil, "line 1: want key = value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestApplyLetsFlagsWin(t *testing.T) {
	s := settings{SettleWindow: 2 * time.Second, DefaultTimeout: time.Minute}
	kv := map[string]string{keySettleWindow: "9s", keyDefaultTimeout: "10s", keyLogLevel: "warn"}
	if err := s.apply(kv, map[string]bool{keyDefaultTimeout: true}); err != nil {
		t.Fatal(err)
	}
	if s.SettleWindow != 9*time.Second || s.DefaultTimeout != time.Minute || s.LogLevel != slog.LevelWarn {
		t.Errorf("settings = %+v", s)
	}
	for _, bad := range []map[string]string{{keySettleWindow: "soon"}, {keyBoundQuiet: "-1s"}, {keyLogLevel: "loud"}} {
		if err := (&settings{}).apply(bad, nil); err == nil {
			t.Errorf("apply(%v) accepted a bad value", bad)
		}
	}
}

// A reload applies the reloadable keys at once (the settle window and the
// rescan interval through the engine's setters); a broken file changes
// nothing.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cxlregiond.conf")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("log_level = info\n")
	base := settings{LogLevel: slog.LevelInfo, SettleWindow: time.Second, MetricsListen: "127.0.0.1:9477", DefaultTimeout: time.Minute}
	level := new(slog.LevelVar)
	l := &liveSettings{path: path, flags: map[string]bool{}, level: level,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), metricsAddr: make(chan string, 1), cur: base}
	var settled, rescan time.Duration
	l.onSettle = func(window, _ time.Duration) { settled = window }
	l.onRescan = func(d time.Duration) { rescan = d }

	write("log_level = debug\nsettle_window = 30s\ndefault_timeout = 5s\nmetrics_listen = 127.0.0.1:19477\nrescan_interval = 1m\n")
	l.reload(base, "test")
	cur := l.get()
	if level.Level() != slog.LevelDebug || cur.DefaultTimeout != 5*time.Second || cur.MetricsListen != "127.0.0.1:19477" {
		t.Errorf("after reload: level %v, settings %+v", level.Level(), cur)
	}
	if cur.SettleWindow != 30*time.Second || settled != 30*time.Second {
		t.Errorf("settle_window not applied on reload: settings %s, engine %s", cur.SettleWindow, settled)
	}
	if cur.RescanInterval != time.Minute || rescan != time.Minute {
		t.Errorf("rescan_interval not applied on reload: settings %s, engine %s", cur.RescanInterval, rescan)
	}
	select {
	case a := <-l.metricsAddr:
		if a != "127.0.0.1:19477" {
			t.Errorf("metrics address %q", a)
		}
	default:
		t.Error("metrics address change not sent")
	}

	write("log_level = shouting\n")
	l.reload(base, "test")
	if level.Level() != slog.LevelDebug || l.get().DefaultTimeout != 5*time.Second {
		t.Error("a broken config file changed the settings")
	}
}

func TestJournalField(t *testing.T) {
	for in, want := range map[string]string{
		"root_decoder": "ROOT_DECODER", "err": "ERR", "bus.name": "BUS_NAME", "_secret": "SECRET",
		"9lives": "LIVES", "message": "ATTR_MESSAGE", "": "FIELD",
	} {
		if got := journalField(in); got != want {
			t.Errorf("journalField(%q) = %q, want %q", in, got, want)
		}
	}
}
