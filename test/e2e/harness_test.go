package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/service/dbustest"
)

// daemon is one cxlregiond --simulate on its own private bus.
type daemon struct {
	t       *testing.T
	dir     string
	bus     string // bus address
	simLog  string
	metrics string   // host:port, or "" when off
	args    []string // cxlregiond's arguments, for restart
	cmd     *exec.Cmd
	stderr  *syncBuffer
	exited  chan struct{}
}

// startDaemon starts a bus and the daemon on the simulator, waits until it
// owns its name, and at the end stops it with SIGTERM and checks it exits
// cleanly.
func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	requireEnv(t)
	dir, err := os.MkdirTemp("", "cxlregion-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bus, err := dbustest.StartBus(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	d := &daemon{t: t, dir: dir, bus: bus.Address, simLog: filepath.Join(dir, "sim.log"), stderr: &syncBuffer{}, exited: make(chan struct{})}
	d.metrics = freePort(t)
	all := append([]string{"--simulate", "--sim-log", d.simLog,
		"--state-dir", filepath.Join(dir, "state"), "--lock-dir", filepath.Join(dir, "lock"),
		"--metrics-listen", d.metrics}, args...)
	d.args = all
	d.start()
	t.Cleanup(d.stop)
	d.waitReady()
	return d
}

// start starts the daemon process with d.args.
func (d *daemon) start() {
	d.t.Helper()
	d.cmd = exec.Command(filepath.Join(binDir, "cxlregiond"), d.args...)
	d.cmd.Env = d.env()
	d.cmd.Stderr = d.stderr
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	exited := make(chan struct{})
	d.exited = exited
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	go func(cmd *exec.Cmd) {
		_ = cmd.Wait()
		close(exited)
	}(d.cmd)
}

// restart stops the daemon with SIGTERM (checking it stopped cleanly) and
// starts it again with the same arguments on the same bus.
func (d *daemon) restart() {
	d.t.Helper()
	d.stop()
	d.start()
	d.waitReady()
}

func (d *daemon) env() []string {
	return append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+d.bus)
}

// waitReady waits until the daemon owns its bus name.
func (d *daemon) waitReady() {
	d.t.Helper()
	conn := d.conn()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var has bool
		if err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, api.BusName).Store(&has); err == nil && has {
			return
		}
		select {
		case <-d.exited:
			d.t.Fatalf("cxlregiond exited before it was ready:\n%s", d.stderr)
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("cxlregiond not on the bus within 15s:\n%s", d.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM: the daemon must exit 0 after a graceful shutdown.
func (d *daemon) stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		if code := d.cmd.ProcessState.ExitCode(); code != 0 {
			d.t.Errorf("cxlregiond exited %d after SIGTERM:\n%s", code, d.stderr)
		}
		if !strings.Contains(d.stderr.String(), "msg=stopped") {
			d.t.Errorf("cxlregiond did not log a clean stop:\n%s", d.stderr)
		}
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		d.t.Errorf("cxlregiond did not stop within 30s of SIGTERM")
	}
}

// conn is a D-Bus connection to the daemon's bus, closed at the end.
func (d *daemon) conn() *godbus.Conn {
	d.t.Helper()
	conn, err := godbus.Connect(d.bus)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// result is a finished CLI run.
type result struct {
	code           int
	stdout, stderr string
}

// ctl runs cxlregionctl as root.
func (d *daemon) ctl(args ...string) result {
	d.t.Helper()
	return d.run(exec.Command(filepath.Join(binDir, "cxlregionctl"), args...))
}

// ctlAsNobody runs cxlregionctl as uid/gid 65534 with no groups.
func (d *daemon) ctlAsNobody(setpriv string, args ...string) result {
	d.t.Helper()
	argv := append([]string{"--reuid", "65534", "--regid", "65534", "--clear-groups", filepath.Join(binDir, "cxlregionctl")}, args...)
	return d.run(exec.Command(setpriv, argv...))
}

func (d *daemon) run(cmd *exec.Cmd) result {
	d.t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Env = d.env()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			d.t.Fatalf("%v: %v", cmd.Args, err)
		}
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		d.t.Fatalf("%v did not finish within 2 minutes", cmd.Args)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String()}
}

// holdLock runs `cxlregionctl lock decoder0.0 -- sleep seconds` (the lock
// directory is the daemon's, asked over the bus) and returns once the
// command runs, so the lock is held; the caller waits for the command.
func (d *daemon) holdLock(seconds string) (*exec.Cmd, *syncBuffer) {
	d.t.Helper()
	holder := exec.Command(filepath.Join(binDir, "cxlregionctl"), "lock", "decoder0.0", "--", "sh", "-c", "echo held; exec sleep "+seconds)
	holder.Env = d.env()
	stderr := &syncBuffer{}
	holder.Stderr = stderr
	stdout, err := holder.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { _ = holder.Process.Kill() })
	held := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		held <- line == "held\n"
	}()
	select {
	case ok := <-held:
		if !ok {
			d.t.Fatalf("lock decoder0.0 did not run its command: %s", stderr)
		}
	case <-time.After(30 * time.Second):
		d.t.Fatalf("lock decoder0.0 not held within 30s: %s", stderr)
	}
	return holder, stderr
}

// mustCtl runs cxlregionctl and requires exit 0.
func (d *daemon) mustCtl(args ...string) string {
	d.t.Helper()
	r := d.ctl(args...)
	if r.code != 0 {
		d.t.Fatalf("cxlregionctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// simLines returns the simulated kernel's log.
func (d *daemon) simLines() []string {
	d.t.Helper()
	b, err := os.ReadFile(d.simLog)
	if err != nil && !os.IsNotExist(err) {
		d.t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// writes counts the writes the simulated kernel received, optionally only
// those to attributes ending in suffix.
func (d *daemon) writes(suffix string) int {
	n := 0
	for _, l := range d.simLines() {
		if _, rest, ok := strings.Cut(l, "cxlsim: write "); ok {
			attr, _, _ := strings.Cut(rest, " ")
			if strings.HasSuffix(attr, suffix) {
				n++
			}
		}
	}
	return n
}

// warnings counts kernel WARNING and BUG reports in the simulated log.
func (d *daemon) warnings() (warn, bug int) {
	for _, l := range d.simLines() {
		if strings.Contains(l, "WARNING:") {
			warn++
		}
		if strings.Contains(l, "BUG:") {
			bug++
		}
	}
	return warn, bug
}

// metric reads one sample of the daemon's metrics endpoint; name includes
// the labels as exposed, e.g. cxlregiond_sysfs_writes_total{attribute="delete_region",result="ok"}.
func (d *daemon) metric(name string) float64 {
	d.t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + d.metrics + "/metrics")
	if err != nil {
		d.t.Fatalf("metrics endpoint: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		d.t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				d.t.Fatalf("metric %s: %q", name, line)
			}
			return v
		}
	}
	d.t.Fatalf("metric %s not exported", name)
	return 0
}

// syncBuffer is the daemon's stderr, read by tests while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freePort picks a loopback port for the metrics listener.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
