package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/lock"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = execute(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// Usage errors exit 2 before anything talks to the bus: the bus address
// points nowhere, so a command that connected would exit 7 instead.
func TestUsageErrorsExitInvalidArgument(t *testing.T) {
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "nobus"))
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"list", "extra"}, "unknown command"},
		{[]string{"create", "--target", "mem01"}, `target "mem01"`},
		{[]string{"create", "mem0", "endpoint3"}, `target "endpoint3"`},
		{[]string{"delete"}, "or --all"},
		{[]string{"delete", "--all", "region0"}, "--all"},
		{[]string{"delete", "region0", "--decoder", "decoder0.0"}, "--decoder goes with --all"},
		{[]string{"create", "--decoder", "decoder0.0", "--size", "lots"}, `size "lots"`},
		{[]string{"create", "--decoder", "../decoder0.0", "--size", "256M"}, "root decoder name"},
		{[]string{"create", "--decoder", "decoder0.0", "--size", "256M", "--timeout", "-1s"}, "--timeout"},
		{[]string{"enable", "region0\n"}, "not a region name"},
		{[]string{"info"}, "accepts 1 arg"},
		{[]string{"lock", "decoder0.0", "true"}, "usage"},
		{[]string{"lock", "../x", "--", "true"}, "not a root decoder name"},
	}
	for _, tt := range tests {
		code, _, stderr := run(t, tt.args...)
		if code != api.ExitInvalidArgument || !strings.Contains(stderr, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d mentioning %q", tt.args, code, stderr, api.ExitInvalidArgument, tt.want)
		}
	}
}

func TestNoBusIsUnreachable(t *testing.T) {
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "nobus"))
	for _, args := range [][]string{{"list"}, {"status"}, {"delete", "region0"}, {"monitor"}} {
		code, _, stderr := run(t, args...)
		if code != api.ExitUnreachable || !strings.Contains(stderr, "system bus") {
			t.Errorf("%q: exit %d, stderr %q; want %d", args, code, stderr, api.ExitUnreachable)
		}
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	code, out, _ := run(t, "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, e := range api.ExitCodes {
		if !strings.Contains(out, e.Meaning) {
			t.Errorf("--help lacks exit code %d (%s)", e.Code, e.Meaning)
		}
	}
}

func TestLockExitsWithTheCommandsStatus(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		cmd  []string
		want int
	}{
		{[]string{"true"}, 0},
		{[]string{"sh", "-c", "exit 3"}, 3},
		{[]string{"sh", "-c", "kill -TERM $$"}, 128 + 15},
		{[]string{"/nonexistent/command"}, 127},
	}
	for _, tt := range tests {
		args := append([]string{"lock", "decoder0.0", "--lock-dir", dir, "--"}, tt.cmd...)
		if code, _, stderr := run(t, args...); code != tt.want {
			t.Errorf("lock -- %q: exit %d (%s), want %d", tt.cmd, code, stderr, tt.want)
		}
	}
}

// The command runs holding the lock file the daemon's writer takes: nobody
// else gets it meanwhile, and it is free again afterwards. Mutation: start
// the command before lock.LockFile and flock(1) inside gets the lock.
func TestLockHoldsTheDaemonsLockFile(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("flock (util-linux) not found")
	}
	dir := t.TempDir()
	path, err := lock.LockPath(dir, "decoder0.0")
	if err != nil {
		t.Fatal(err)
	}
	// flock -n exits 99 when someone else holds the lock, 0 if it got it.
	code, _, stderr := run(t, "lock", "decoder0.0", "--lock-dir", dir, "--", flock, "-n", "-E", "99", path, "true")
	if code != 99 {
		t.Fatalf("flock inside lock: exit %d (%s), want 99 (held)", code, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	unlock, err := lock.LockFile(ctx, path)
	if err != nil {
		t.Fatalf("lock not released after the command: %v", err)
	}
	_ = unlock()
}

// A held lock makes `lock --timeout` give up with the busy status.
func TestLockTimeoutIsBusy(t *testing.T) {
	dir := t.TempDir()
	path, err := lock.LockPath(dir, "decoder0.0")
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := lock.LockFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	code, _, stderr := run(t, "lock", "decoder0.0", "--lock-dir", dir, "--timeout", "100ms", "--", "true")
	if code != api.ExitBusy || !strings.Contains(stderr, "decoder0.0") {
		t.Errorf("exit %d, stderr %q; want %d naming decoder0.0", code, stderr, api.ExitBusy)
	}
}
