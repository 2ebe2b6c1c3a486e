package e2e

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The daemon refuses to start, with a message that says why, when it
// cannot do its job.
func TestDaemonStartFailuresAreClear(t *testing.T) {
	d := startDaemon(t)
	empty := t.TempDir()
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"name taken", d.env(), []string{"--simulate", "--state-dir", filepath.Join(empty, "s1"), "--lock-dir", filepath.Join(empty, "l1"), "--metrics-listen", "off"},
			"already owned by another process"},
		{"no CXL bus", d.env(), []string{"--sysfs-root", empty, "--state-dir", filepath.Join(empty, "s2"), "--lock-dir", filepath.Join(empty, "l2"), "--metrics-listen", "off"},
			"no CXL bus at " + empty},
		{"bus unreachable", append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+filepath.Join(empty, "nobus")),
			[]string{"--simulate", "--state-dir", filepath.Join(empty, "s3"), "--lock-dir", filepath.Join(empty, "l3"), "--metrics-listen", "off"},
			"cannot connect to the system bus"},
		{"bad config key", d.env(), []string{"--simulate", "--config", writeFile(t, empty, "bad.conf", "settle = 1s\n"), "--metrics-listen", "off"},
			`unknown key "settle"`},
		{"journal of an unknown format version", d.env(), []string{"--simulate", "--state-dir", futureJournal(t, filepath.Join(empty, "s5")), "--lock-dir", filepath.Join(empty, "l5"), "--metrics-listen", "off"},
			"has format version 99; this cxlregiond reads version"},
		{"guard on the simulator", d.env(), []string{"--simulate", "--guard", "on", "--state-dir", filepath.Join(empty, "s4"), "--lock-dir", filepath.Join(empty, "l4"), "--metrics-listen", "off"},
			"--guard=on needs a real /sys"},
		// Metrics: the listener opens before READY, so a bad address is a
		// failed start, not a daemon that runs on without metrics.
		{"metrics port without host", d.env(), []string{"--simulate", "--state-dir", filepath.Join(empty, "s5"), "--lock-dir", filepath.Join(empty, "l5"), "--metrics-listen", "9477"},
			`--metrics-listen "9477": want host:port (e.g. 127.0.0.1:9477) or "off"`},
		{"metrics empty host", d.env(), []string{"--simulate", "--state-dir", filepath.Join(empty, "s6"), "--lock-dir", filepath.Join(empty, "l6"), "--metrics-listen", ":9477"},
			`--metrics-listen ":9477": no host`},
		{"metrics port in use", d.env(), []string{"--simulate", "--state-dir", filepath.Join(empty, "s7"), "--lock-dir", filepath.Join(empty, "l7"), "--metrics-listen", d.metrics},
			"metrics listener: listen tcp " + d.metrics + ": bind: address already in use"},
		{"metrics config without host", d.env(), []string{"--simulate", "--config", writeFile(t, empty, "metrics.conf", "metrics_listen = 9477\n"), "--state-dir", filepath.Join(empty, "s8"), "--lock-dir", filepath.Join(empty, "l8")},
			`metrics_listen = 9477: want host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(binDir, "cxlregiond"), tt.args...)
			cmd.Env = tt.env
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatal("cxlregiond kept running")
			}
			if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant non-zero and %q", cmd.ProcessState.ExitCode(), stderr.String(), tt.want)
			}
		})
	}
	// The first daemon is unharmed.
	d.mustCtl("status")
}

// A config file change is picked up without a restart: the default
// timeout shrinks and a create that waits longer than it fails as Busy.
func TestConfigReload(t *testing.T) {
	requireEnv(t)
	dir := t.TempDir()
	conf := writeFile(t, dir, "cxlregiond.conf", "default_timeout = 1m\n")
	d := startDaemon(t, "--config", conf, "--sim-register-delay", "2s")
	// Editors replace files; so does this.
	tmp := writeFile(t, dir, "new.conf", "default_timeout = 500ms\nlog_level = debug\n")
	if err := os.Rename(tmp, conf); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.stderr.String(), "config reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged:\n%s", d.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	r := d.ctl("create", "--decoder", "decoder0.0", "--size", "256M")
	if r.code != 4 || time.Since(start) > 10*time.Second {
		t.Errorf("create with a 500ms default timeout and a 2s settle: exit %d after %s: %s", r.code, time.Since(start), r.stderr)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// futureJournal makes a state directory whose journal a newer cxlregiond
// wrote (format version 99; internal/journal's header: magic, version,
// CRC32C of the two).
func futureJournal(t *testing.T, dir string) string {
	t.Helper()
	hdr := []byte("CXLRJNL\x00")
	hdr = binary.LittleEndian.AppendUint32(hdr, 99)
	hdr = binary.LittleEndian.AppendUint32(hdr, crc32.Checksum(hdr, crc32.MakeTable(crc32.Castagnoli)))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "journal"), hdr, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}
