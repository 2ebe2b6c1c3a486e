package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs/sysfstest"
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
		{[]string{"create", "--target", "mem01"}, `--target "mem01"`},
		{[]string{"create", "mem0", "endpoint3"}, `--target "endpoint3"`},
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
		// The kernel never prints a leading zero (internal/devname): each
		// command that takes a name refuses the second spelling itself.
		{[]string{"create", "--decoder", "decoder00.0", "--size", "256M"}, "root decoder name"},
		{[]string{"create", "--decoder", "decoder0.0", "--size", "256M", "--target", "decoder03.0"}, "--target"},
		{[]string{"delete", "region01"}, "not a region name"},
		{[]string{"info", "region01"}, "not a region name"},
		{[]string{"enable", "region01"}, "not a region name"},
		{[]string{"disable", "region01"}, "not a region name"},
		{[]string{"lock", "decoder00.0", "--", "true"}, "not a root decoder name"},
	}
	for _, tt := range tests {
		code, _, stderr := run(t, tt.args...)
		if code != api.ExitInvalidArgument || !strings.Contains(stderr, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d mentioning %q", tt.args, code, stderr, api.ExitInvalidArgument, tt.want)
		}
	}
}

// noDaemon points the bus nowhere and builds a sysfs tree from the 6.12
// capture (root decoder decoder0.0, switch decoder1.0, endpoint decoder2.0),
// so lock runs as it does with the daemon down; it returns lock's flags for
// that tree and dir as the lock directory.
func noDaemon(t *testing.T, dir string) []string {
	t.Helper()
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "nobus"))
	root := t.TempDir()
	if err := sysfstest.Build(root, filepath.Join("..", "..", "internal", "sysfs", "testdata", "6.12", "1-idle.txt")); err != nil {
		t.Fatal(err)
	}
	return []string{"--sysfs-root", root, "--lock-dir", dir}
}

// With the daemon down, lock checks the root decoder in sysfs and says it
// did: a decoder that is not a root decoder exits 3 without running the
// command. Mutation: skip the sysfs check in lockDirFor and the command
// runs.
func TestLockWithoutDaemonChecksSysfs(t *testing.T) {
	dir := t.TempDir()
	flags := noDaemon(t, dir)
	ran := filepath.Join(t.TempDir(), "ran")
	tests := []struct {
		decoder string
		want    int
		stderr  string
	}{
		{"decoder0.0", 0, "warning: cxlregiond is not running"},
		{"decoder9.9", api.ExitNotFound, "lock decoder9.9: no such root decoder in "},
		{"decoder2.0", api.ExitNotFound, `is a "cxl_decoder_endpoint", not a cxl_decoder_root`},
	}
	for _, tt := range tests {
		_ = os.Remove(ran)
		args := append(append([]string{"lock", tt.decoder}, flags...), "--", "touch", ran)
		code, _, stderr := run(t, args...)
		if code != tt.want || !strings.Contains(stderr, tt.stderr) {
			t.Errorf("lock %s: exit %d, stderr %q; want %d and %q", tt.decoder, code, stderr, tt.want, tt.stderr)
		}
		if _, err := os.Stat(ran); (err == nil) != (tt.want == 0) {
			t.Errorf("lock %s: command ran = %v, want %v", tt.decoder, err == nil, tt.want == 0)
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
	flags := noDaemon(t, dir)
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
		args := append(append([]string{"lock", "decoder0.0"}, flags...), append([]string{"--"}, tt.cmd...)...)
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
	flags := noDaemon(t, dir)
	path, err := lock.LockPath(dir, "decoder0.0")
	if err != nil {
		t.Fatal(err)
	}
	// flock -n exits 99 when someone else holds the lock, 0 if it got it.
	code, _, stderr := run(t, append(append([]string{"lock", "decoder0.0"}, flags...), "--", flock, "-n", "-E", "99", path, "true")...)
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
	flags := noDaemon(t, dir)
	path, err := lock.LockPath(dir, "decoder0.0")
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := lock.LockFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	code, _, stderr := run(t, append(append([]string{"lock", "decoder0.0", "--timeout", "100ms"}, flags...), "--", "true")...)
	if code != api.ExitBusy || !strings.Contains(stderr, "decoder0.0") {
		t.Errorf("exit %d, stderr %q; want %d naming decoder0.0", code, stderr, api.ExitBusy)
	}
}

// A signal that comes while COMMAND runs is COMMAND's: lock forwards it.
// Five rounds, as a race decides it.
// Mutation: leave the wait's signal watcher running once the lock is
// taken (the old code) → it takes nearly every SIGTERM, COMMAND runs
// on and exits 0.
func TestLockForwardsSignalsToCommand(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	flags := noDaemon(t, dir)
	script := `trap 'kill $! 2>/dev/null; exit 42' TERM; sleep 5 & : > "$0"; wait $!`
	for round := range 5 {
		_ = os.Remove(ready)
		codes := make(chan int, 1)
		go func() {
			code, _, _ := run(t, append(append([]string{"lock", "decoder0.0"}, flags...), "--", "sh", "-c", script, ready)...)
			codes <- code
		}()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(ready); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: COMMAND did not start", round)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case code := <-codes:
			if code != 42 {
				t.Errorf("round %d: exit %d, want 42 (COMMAND's answer to SIGTERM)", round, code)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: lock did not return", round)
		}
	}
}

// Every column list prints is explained in list --help.
func TestListHelpExplainsEveryColumn(t *testing.T) {
	code, out, _ := run(t, "list", "--help")
	if code != api.ExitOK {
		t.Fatalf("list --help: exit %d", code)
	}
	for _, c := range listColumns {
		if !strings.Contains(out, "\n  "+c.name+" ") || !strings.Contains(out, c.meaning) {
			t.Errorf("list --help does not explain %s:\n%s", c.name, out)
		}
	}
	for _, name := range []string{"GEN", "ORIGIN", "SETTLED"} {
		if !strings.Contains(out, "\n  "+name+" ") {
			t.Errorf("list --help does not explain %s", name)
		}
	}
}
