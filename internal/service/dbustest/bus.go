// Package dbustest runs a private dbus-daemon for tests, never the host's
// system bus. Its policy allows everything: the daemon under test must do
// its own authorization, and tests check that it does.
package dbustest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Config is the bus configuration: a unix socket in dir, EXTERNAL (uid)
// authentication, and a policy that lets every user own and call anything.
func Config(dir string) string {
	return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=` + filepath.Join(dir, "bus") + `</listen>
  <auth>EXTERNAL</auth>
  <!-- Room for the hostile-caller test's thousand clients at once. -->
  <limit name="max_incomplete_connections">1100</limit>
  <limit name="max_completed_connections">2048</limit>
  <limit name="max_connections_per_user">2048</limit>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
`
}

// Bus is a running private dbus-daemon.
type Bus struct {
	// Address is the bus address; set DBUS_SYSTEM_BUS_ADDRESS to it.
	Address string
	cmd     *exec.Cmd
	waited  chan struct{}
}

// ErrNoDaemon means dbus-daemon is not installed (Debian package dbus).
var ErrNoDaemon = errors.New("dbus-daemon not found in PATH (install the Debian package dbus)")

// StartBus starts a dbus-daemon listening in dir. The directory is made
// world-searchable so that tests can connect as an unprivileged user.
func StartBus(dir string) (*Bus, error) {
	exe, err := exec.LookPath("dbus-daemon")
	if err != nil {
		return nil, ErrNoDaemon
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(Config(dir)), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "--config-file="+conf, "--print-address=1", "--nofork", "--nopidfile", "--nosyslog")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dbus-daemon: %w", err)
	}
	b := &Bus{cmd: cmd, waited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(b.waited)
	}()
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case a := <-addr:
		if a == "" {
			b.Close()
			return nil, errors.New("dbus-daemon printed no address")
		}
		b.Address = a
		return b, nil
	case <-time.After(10 * time.Second):
		b.Close()
		return nil, errors.New("dbus-daemon did not print its address within 10s")
	}
}

// Close stops the bus.
func (b *Bus) Close() {
	_ = b.cmd.Process.Kill()
	<-b.waited
}

// Start starts a bus for one test, sets DBUS_SYSTEM_BUS_ADDRESS for it,
// and stops the bus at the end. It skips the test when dbus-daemon is
// missing (CI installs it).
func Start(t testing.TB) *Bus {
	t.Helper()
	dir, err := os.MkdirTemp("", "dbustest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	b, err := StartBus(dir)
	if errors.Is(err, ErrNoDaemon) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", b.Address)
	return b
}
