package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/service/dbustest"
)

// The benchmarks of this file run the built commands, cxlregiond and
// cxlregionctl, as processes, as an operator meets them: the daemon's start
// to READY, its memory and its idle cost, and a cold cxlregionctl.

// binariesOnce holds the commands built for this process (binaries);
// TestMain removes them.
var binariesOnce struct {
	sync.Once
	dir string
	err error
}

// binaries builds cxlregiond and cxlregionctl from this tree once per
// process and returns the directory that holds them.
func binaries(b *testing.B) string {
	b.Helper()
	binariesOnce.Do(func() { binariesOnce.dir, binariesOnce.err = buildBinaries() })
	if binariesOnce.err != nil {
		b.Fatal(binariesOnce.err)
	}
	return binariesOnce.dir
}

func removeBinaries() {
	if binariesOnce.dir != "" {
		os.RemoveAll(binariesOnce.dir)
	}
}

func buildBinaries() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		// go test runs this binary; its toolchain may just not be on
		// PATH, but go test sets GOROOT.
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	dir, err := os.MkdirTemp("", "cxlregiond-bench-bin-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command(goBin, "build", "-o", dir+"/",
		"github.com/cxlregion/cxlregiond/cmd/cxlregiond", "github.com/cxlregion/cxlregiond/cmd/cxlregionctl")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("build the commands: %v\n%s", err, out)
	}
	return dir, nil
}

// daemonArgs are cxlregiond's arguments for a process of its own: state
// and locks in dir, no config file, no guard (it needs fanotify, and what
// it costs is the guard row's), no metrics listener.
func daemonArgs(dir string) []string {
	return []string{"--config", "", "--state-dir", filepath.Join(dir, "state"), "--lock-dir", filepath.Join(dir, "lock"),
		"--guard", "off", "--metrics-listen", "off", "--log-level", "warn"}
}

// onTree runs the daemon on the large host's sysfs tree, as on a host
// with 4096 regions.
func onTree(h *largeHost) []string { return []string{"--sysfs-root", h.dir} }

// demo runs the daemon on its simulator's default (demo) topology.
func demo() []string { return []string{"--simulate"} }

// proc is one cxlregiond process on a private bus.
type proc struct {
	b      *testing.B
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *lockedBuffer
	// ready is the time from the process's start to its READY=1
	// (sd_notify), which it sends once the engine's first scan is done
	// and it owns its bus name.
	ready time.Duration
}

// lockedBuffer is a bytes.Buffer safe for the process's stderr copier and
// the benchmark to use at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startProc starts cxlregiond with args on the bus at busAddr and waits
// for its READY=1 on a notify socket of its own, as systemd does.
func startProc(b *testing.B, bins, busAddr string, args ...string) *proc {
	b.Helper()
	dir, err := os.MkdirTemp("", "cxlbench-") // short: a socket path has at most 107 bytes
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(filepath.Join(dir, "notify"))
	b.Cleanup(func() { os.RemoveAll(dir) })
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify"), Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	defer notify.Close()
	p := &proc{b: b, exited: make(chan struct{}), stderr: &lockedBuffer{}}
	p.cmd = exec.Command(filepath.Join(bins, "cxlregiond"), append(daemonArgs(dir), args...)...)
	p.cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+busAddr, "NOTIFY_SOCKET="+filepath.Join(dir, "notify"))
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	readyCh := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		_ = notify.SetReadDeadline(time.Now().Add(2 * time.Minute))
		for {
			n, _, err := notify.ReadFromUnix(buf)
			if err != nil {
				readyCh <- err
				return
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if line == "READY=1" {
					readyCh <- nil
					return
				}
			}
		}
	}()
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	b.Cleanup(p.stop)
	select {
	case err := <-readyCh:
		p.ready = time.Since(start)
		if err != nil {
			b.Fatalf("cxlregiond sent no READY=1: %v\n%s", err, p.stderr)
		}
	case <-p.exited:
		b.Fatalf("cxlregiond exited before READY=1:\n%s", p.stderr)
	}
	return p
}

// stop sends SIGTERM; the daemon must exit 0.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			p.b.Errorf("cxlregiond exited %d after SIGTERM:\n%s", code, p.stderr)
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		p.b.Errorf("cxlregiond did not stop within 30s of SIGTERM")
	}
}

// BenchmarkStartup is issue 14's startup row: cxlregiond started as a
// process on a host of 4096 regions (the large host's tree on tmpfs, read
// through --sysfs-root) until it sends READY=1, which it does once its
// engine's first full scan is done and the service owns its bus name,
// against the plain read of the same tree (ScanAtScale's floor: the same
// files read with bare system calls), alternating in one run.
// ready/plain is their ratio; ready-ns/op the start to READY (target
// ≤ 1 s) and plain-ns/op the read. Stopping each daemon is not timed.
func BenchmarkStartup(b *testing.B) {
	h := largeTree(b)
	bins := binaries(b)
	bus := dbustest.Start(b)
	var ready, plain stopwatch
	odd := false
	for b.Loop() {
		start := func() {
			p := startProc(b, bins, bus.Address, onTree(h)...)
			ready.total += p.ready
			ready.n++
			b.StopTimer()
			p.stop()
			b.StartTimer()
		}
		read := func() { plain.time(b, "plain read", func() error { return plainRead(h.dir, h.ops) }) }
		alternate(&odd, start, read)
	}
	b.ReportMetric(ready.nsPerOp(), "ready-ns/op")
	b.ReportMetric(plain.nsPerOp(), "plain-ns/op")
	b.ReportMetric(ready.nsPerOp()/plain.nsPerOp(), "ready/plain")
	b.ReportMetric(float64(len(h.want.Regions)), "regions")
}

// idleWindow is how long BenchmarkIdle watches an idle daemon. The issue
// asks for 60 s; 10 s keeps make bench short, and what it counts is per
// second.
const idleWindow = 10 * time.Second

// BenchmarkIdle is issue 14's memory and idle row, on the demo topology
// (the simulator inside the daemon, few regions) and on the large host's
// tree (4096 regions): the daemon's resident memory once it is READY
// (start-rss-MiB, target ≤ 20 MiB and ≤ 64 MiB) and at the end of an idle
// window with no request and no uevent (idle-rss-MiB); over the window the
// CPU time its threads used (idle-cpu-ms, from /proc/PID/task/*/schedstat;
// idle-cpu-ticks from /proc/PID/stat beside it) and how often they were
// put on a CPU (wakeups/s: schedstat's timeslices, which counts every
// wakeup of every thread: timers, tickers, polls). Target: ≈ 0.
// cpu-per-s is the idle CPU time per second of window, the row's ratio.
func BenchmarkIdle(b *testing.B) {
	for _, c := range []struct {
		name string
		args func(b *testing.B) []string
	}{
		{"demo", func(*testing.B) []string { return demo() }},
		{fmt.Sprintf("regions=%d", largeRegions()), func(b *testing.B) []string { return onTree(largeTree(b)) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			args := c.args(b)
			bins := binaries(b)
			bus := dbustest.Start(b)
			var startRSS, idleRSS, cpuNs, ticks, slices float64
			n := 0
			for b.Loop() {
				b.StopTimer()
				p := startProc(b, bins, bus.Address, args...)
				pid := p.cmd.Process.Pid
				startRSS += rssMiB(b, pid)
				before := threadStats(b, pid)
				t0 := ticksOf(b, pid)
				b.StartTimer()
				time.Sleep(idleWindow)
				b.StopTimer()
				after := threadStats(b, pid)
				ticks += float64(ticksOf(b, pid) - t0)
				idleRSS += rssMiB(b, pid)
				c, s := after.since(before)
				cpuNs += float64(c)
				slices += float64(s)
				n++
				p.stop()
				b.StartTimer()
			}
			per := func(v float64) float64 { return v / float64(n) }
			b.ReportMetric(per(startRSS), "start-rss-MiB")
			b.ReportMetric(per(idleRSS), "idle-rss-MiB")
			b.ReportMetric(per(cpuNs)/1e6, "idle-cpu-ms")
			b.ReportMetric(per(ticks), "idle-cpu-ticks")
			b.ReportMetric(per(slices)/idleWindow.Seconds(), "wakeups/s")
			b.ReportMetric(per(cpuNs)/1e6/idleWindow.Seconds(), "cpu-ms-per-s")
			b.ReportMetric(idleWindow.Seconds(), "window-s")
		})
	}
}

// rssMiB is the process's resident memory (VmRSS).
func rssMiB(b *testing.B, pid int) float64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// ticksOf is the process's user and system CPU time in clock ticks
// (/proc/PID/stat utime + stime).
func ticksOf(b *testing.B, pid int) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: state is
	// field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		b.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		b.Fatalf("/proc/%d/stat: %v", pid, err)
	}
	return u + s
}

// schedStats is each thread's schedstat: CPU time (ns) and timeslices.
type schedStats map[string][2]int64

func threadStats(b *testing.B, pid int) schedStats {
	b.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		b.Fatal(err)
	}
	st := schedStats{}
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited
		}
		if err != nil {
			b.Fatal(err)
		}
		f := strings.Fields(string(data))
		if len(f) != 3 {
			b.Fatalf("schedstat of thread %s: %q", t.Name(), data)
		}
		cpu, err1 := strconv.ParseInt(f[0], 10, 64)
		n, err2 := strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			b.Fatalf("schedstat of thread %s: %v", t.Name(), err)
		}
		st[t.Name()] = [2]int64{cpu, n}
	}
	return st
}

// since is the CPU time and timeslices of every thread since before; a
// thread started meanwhile counts from 0.
func (s schedStats) since(before schedStats) (cpuNs, slices int64) {
	for tid, v := range s {
		w := before[tid]
		cpuNs += v[0] - w[0]
		slices += v[1] - w[1]
	}
	return cpuNs, slices
}

// BenchmarkCLIList is issue 14's CLI row: `cxlregionctl list --json` run
// as a new process against a daemon serving 4096 regions (the large
// host's tree) on a private bus, against `cxlregionctl --version` (the
// same binary's start and exit, no bus), alternating in one run.
// list-ns/op is the list (target ≤ 150 ms), version-ns/op the floor,
// list/version their ratio. The list must print all 4096 regions.
func BenchmarkCLIList(b *testing.B) {
	h := largeTree(b)
	bins := binaries(b)
	bus := dbustest.Start(b)
	startProc(b, bins, bus.Address, onTree(h)...)
	ctl := filepath.Join(bins, "cxlregionctl")
	env := append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Address)
	run := func(args ...string) ([]byte, error) {
		cmd := exec.Command(ctl, args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("cxlregionctl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return out, nil
	}
	out, err := run("list", "--json")
	if err != nil {
		b.Fatal(err)
	}
	var regions []map[string]any
	if err := json.Unmarshal(out, &regions); err != nil {
		b.Fatalf("cxlregionctl list --json: %v", err)
	}
	if len(regions) != len(h.want.Regions) {
		b.Fatalf("cxlregionctl list --json printed %d regions, want %d", len(regions), len(h.want.Regions))
	}
	var list, version stopwatch
	odd := false
	for b.Loop() {
		l := func() { list.time(b, "list --json", func() error { _, err := run("list", "--json"); return err }) }
		v := func() { version.time(b, "--version", func() error { _, err := run("--version"); return err }) }
		alternate(&odd, l, v)
	}
	b.ReportMetric(list.nsPerOp(), "list-ns/op")
	b.ReportMetric(version.nsPerOp(), "version-ns/op")
	b.ReportMetric(list.nsPerOp()/version.nsPerOp(), "list/version")
	b.ReportMetric(float64(len(out)), "json-bytes")
	b.ReportMetric(float64(len(regions)), "regions")
}
