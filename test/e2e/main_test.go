// Package e2e tests cxlregiond and cxlregionctl as a user meets them:
// the binaries built from this tree, a private dbus-daemon, the daemon on
// its simulated kernel, the CLI as a subprocess (as root and as uid 65534
// through setpriv). Nothing here imports the daemon's internals except the
// shared contract in package api and the bus helper.
//
// Needs dbus-daemon (Debian package dbus) and, for the unprivileged
// caller, root and setpriv (util-linux); without them the tests skip with
// the reason.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Set by TestMain.
var (
	binDir     string // holds cxlregiond, cxlregionctl and a copy of this test binary, all 0755
	skipReason string // non-empty: the environment cannot run these tests
)

// clientEnv makes this test binary act as a D-Bus client (clientMain), so a
// test can call the API directly as another user.
const clientEnv = "CXLREGION_E2E_CLIENT"

func TestMain(m *testing.M) {
	if os.Getenv(clientEnv) != "" {
		os.Exit(clientMain())
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		skipReason = "dbus-daemon not found (install the Debian package dbus; CI does)"
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "cxlregion-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Readable by the unprivileged caller.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir = dir
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build:", err)
		return 1
	}
	return m.Run()
}

// build compiles the two commands from this tree, and copies this test
// binary next to them.
func build(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		// go test runs this binary; its toolchain may just not be on PATH.
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, statErr := os.Stat(goBin); os.Getenv("GOROOT") == "" || statErr != nil {
			return fmt.Errorf("the go command is not on PATH: %w", err)
		}
	}
	cmd := exec.Command(goBin, "build", "-o", dir+"/",
		"-ldflags", "-X github.com/cxlregion/cxlregiond/api.Version=0.0.0~e2e -X github.com/cxlregion/cxlregiond/api.Commit=e2e",
		"github.com/cxlregion/cxlregiond/cmd/cxlregiond", "github.com/cxlregion/cxlregiond/cmd/cxlregionctl")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	data, err := os.ReadFile(self)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "e2e-client"), data, 0o755)
}

func requireEnv(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// requireRoot skips tests that switch to another user.
func requireRoot(t *testing.T) string {
	t.Helper()
	requireEnv(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a caller as uid 65534 (CI runs as root)")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not found (install util-linux; CI does)")
	}
	return setpriv
}
