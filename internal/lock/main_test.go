package lock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// The lock file is shared with other processes, so some tests re-run this
// test binary as a child that takes the lock (the helper-process pattern).
const (
	helperModeEnv = "CXLREGIOND_LOCK_HELPER"
	helperPathEnv = "CXLREGIOND_LOCK_HELPER_PATH"
	// helperTimedOut is the child's exit status when it could not get the lock.
	helperTimedOut = 3
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperModeEnv) {
	case "":
		os.Exit(m.Run())
	case "hold":
		os.Exit(helperHold(os.Getenv(helperPathEnv)))
	case "try":
		os.Exit(helperTry(os.Getenv(helperPathEnv)))
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode")
		os.Exit(2)
	}
}

// helperHold takes the lock, says "locked" on stdout and keeps the lock until
// its stdin closes.
func helperHold(path string) int {
	unlock, err := LockFile(context.Background(), path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := unlock(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// helperTry tries to take the lock for a short while.
func helperTry(path string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	unlock, err := LockFile(ctx, path)
	if errors.Is(err, context.DeadlineExceeded) {
		return helperTimedOut
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = unlock()
	return 0
}

// lockHolder is a child process holding a lock file.
type lockHolder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startLockHolder starts a child that holds the flock on path, and returns
// once the child has it.
func startLockHolder(t *testing.T, path string) *lockHolder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperModeEnv+"=hold", helperPathEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &lockHolder{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { h.exit(t) })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("lock holder child: read %q, %v", line, err)
	}
	return h
}

// exit lets the child release the lock and waits for it.
func (h *lockHolder) exit(t *testing.T) {
	t.Helper()
	if h.cmd.ProcessState != nil {
		return
	}
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Errorf("lock holder child: %v", err)
	}
}

// tryLockInChild reports whether a child process could take the lock on path
// within a short wait.
func tryLockInChild(t *testing.T, path string) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperModeEnv+"=try", helperPathEnv+"="+path)
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true
	case errors.As(err, &ee) && ee.ExitCode() == helperTimedOut:
		return false
	default:
		t.Fatalf("lock try child: %v", err)
		return false
	}
}

// newTestRegistry returns a registry over a temporary sysfs stand-in made of
// regular files, and that stand-in's root.
func newTestRegistry(t testing.TB, opts ...Option) (*Registry, string) {
	t.Helper()
	root := t.TempDir()
	reg, err := NewRegistry(sysfs.Open(root), t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return reg, root
}

func mustWriter(t testing.TB, r *Registry, name string) *Writer {
	t.Helper()
	w, err := r.Writer(name)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// waitFor polls cond until it holds, failing the test after a few seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// waitDepth waits until the writer has n requests waiting or running.
func waitDepth(t testing.TB, w *Writer, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("queue depth %d of %s", n, w.Name()), func() bool { return w.QueueDepth() == n })
}
