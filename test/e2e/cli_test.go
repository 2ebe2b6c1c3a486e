package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/api"
)

func TestCLIRegionLifecycle(t *testing.T) {
	d := startDaemon(t)

	if out := d.mustCtl("list"); !strings.HasPrefix(out, "REGION") || strings.Count(out, "\n") != 1 {
		t.Errorf("list on an empty host:\n%s", out)
	}
	if out := d.mustCtl("list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("list --json on an empty host: %q, want []", out)
	}

	name := strings.TrimSpace(d.mustCtl("create", "--decoder", "decoder0.0", "--type", "pmem", "--size", "256M"))
	if name != "region0" {
		t.Fatalf("create printed %q, want region0", name)
	}
	r := checkRegion(t, []byte(d.mustCtl("info", name, "--json")))
	if r.Lifecycle != api.StateEnabled || r.Size != 256<<20 || r.RootDecoder != "decoder0.0" || r.Origin != "daemon" ||
		!r.Settled || len(r.Mappings) != 1 || r.DecodeState != "commit" {
		t.Errorf("info --json after create: %+v", r)
	}
	list := checkRegionList(t, []byte(d.mustCtl("list", "--json")))
	if len(list) != 1 || list[0].Region != name || list[0].Generation != r.Generation {
		t.Errorf("list --json: %+v", list)
	}
	for _, want := range []string{"region0", "decoder0.0", "pmem", "256 MiB", "enabled"} {
		if out := d.mustCtl("list"); !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	info := d.mustCtl("info", name)
	for _, want := range []string{"region:", "region0", "resource:", "0x", "uuid:", r.UUID, "target0:", r.Mappings[0].Decoder} {
		if !strings.Contains(info, want) {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}

	d.mustCtl("disable", name)
	if r := checkRegion(t, []byte(d.mustCtl("info", name, "--json"))); r.Lifecycle != api.StateCommitted {
		t.Errorf("after disable: state %s, want committed", r.Lifecycle)
	}
	d.mustCtl("enable", name)
	if r := checkRegion(t, []byte(d.mustCtl("info", name, "--json"))); r.Lifecycle != api.StateEnabled {
		t.Errorf("after enable: state %s, want enabled", r.Lifecycle)
	}

	// create --json prints the new region's object.
	r2 := checkRegion(t, []byte(d.mustCtl("create", "--decoder", "decoder0.2", "--type", "ram", "--size", "0x10000000", "--json")))
	if r2.Type != "ram" || r2.UUID != "" || r2.Region == name {
		t.Errorf("create --json: %+v", r2)
	}
	d.mustCtl("delete", name)
	d.mustCtl("delete", r2.Region)
	if out := d.mustCtl("list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("list --json after deleting everything: %s", out)
	}
	if n := d.writes("delete_region"); n != 2 {
		t.Errorf("%d delete_region writes for two deletes", n)
	}
}

func TestCLIExitCodes(t *testing.T) {
	// A register delay longer than the create timeout makes the settle
	// wait time out: Busy. The hypervisor profile refuses commit: a
	// kernel error.
	d := startDaemon(t, "--sim-register-delay", "3s")
	tests := []struct {
		name string
		args []string
		code int
		msg  string // stderr must name the object and the reason
	}{
		{"info missing", []string{"info", "region9"}, api.ExitNotFound, "region9"},
		{"delete missing", []string{"delete", "region9"}, api.ExitNotFound, "region9"},
		{"enable missing", []string{"enable", "region9"}, api.ExitNotFound, "region9"},
		{"disable missing", []string{"disable", "region9"}, api.ExitNotFound, "region9"},
		{"create on missing root decoder", []string{"create", "--decoder", "decoder0.9", "--size", "256M"}, api.ExitNotFound, "decoder0.9"},
		{"create unaligned size", []string{"create", "--decoder", "decoder0.0", "--size", "100M"}, api.ExitInvalidArgument, "256 MiB"},
		{"create 3 ways on a 1-way window", []string{"create", "--decoder", "decoder0.0", "--size", "768M", "--ways", "3"}, api.ExitInvalidArgument, "ways"},
		{"create ram on a pmem window", []string{"create", "--decoder", "decoder0.0", "--type", "ram", "--size", "256M"}, api.ExitInvalidArgument, "decoder0.0"},
		{"create bad uuid", []string{"create", "--decoder", "decoder0.0", "--size", "256M", "--uuid", "xyz"}, api.ExitInvalidArgument, "uuid"},
		{"create bad size syntax", []string{"create", "--decoder", "decoder0.0", "--size", "big"}, api.ExitInvalidArgument, "size"},
		{"create times out settling", []string{"create", "--decoder", "decoder0.0", "--size", "256M", "--timeout", "1s"}, api.ExitBusy, "decoder0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := d.ctl(tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d\nstderr: %s", r.code, tt.code, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "cxlregionctl: ") || !strings.Contains(r.stderr, tt.msg) {
				t.Errorf("stderr %q does not name %q", r.stderr, tt.msg)
			}
		})
	}

	t.Run("kernel error", func(t *testing.T) {
		kd := startDaemon(t, "--sim-hypervisor")
		before := kd.writes("")
		r := kd.ctl("create", "--decoder", "decoder0.0", "--size", "256M")
		if r.code != api.ExitKernelError {
			t.Fatalf("exit %d, want %d\nstderr: %s", r.code, api.ExitKernelError, r.stderr)
		}
		for _, want := range []string{"commit", "ENXIO", "region0/commit"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr %q lacks %q (the attribute and the errno)", r.stderr, want)
			}
		}
		if kd.writes("") == before {
			t.Error("no write reached the kernel before the refusal")
		}
		if out := kd.mustCtl("list", "--json"); strings.TrimSpace(out) != "[]" {
			t.Errorf("the failed create was not rolled back: %s", out)
		}
	})

	t.Run("daemon unreachable", func(t *testing.T) {
		gone := startDaemon(t)
		gone.stop()
		for _, args := range [][]string{{"list"}, {"delete", "region0"}, {"status"}} {
			r := gone.ctl(args...)
			if r.code != api.ExitUnreachable || !strings.Contains(r.stderr, "not running") {
				t.Errorf("%v with the daemon stopped: exit %d, stderr %q; want %d", args, r.code, r.stderr, api.ExitUnreachable)
			}
		}
	})
}

func TestCLIStatus(t *testing.T) {
	d := startDaemon(t)
	st := checkStatus(t, []byte(d.mustCtl("status", "--json")))
	if st.Version != e2eVersion || !st.Simulated || st.GuardActive || len(st.RootDecoders) != 4 || st.Regions != 0 {
		t.Errorf("status --json: %+v", st)
	}
	out := d.mustCtl("status")
	for _, want := range []string{"cxlregiond " + e2eVersion, "simulated", "guard:", "inactive", "decoder0.0", "FROZEN", "QUEUE"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

func TestCLIMonitor(t *testing.T) {
	d := startDaemon(t)
	for _, asJSON := range []bool{true, false} {
		args := []string{"monitor"}
		if asJSON {
			args = append(args, "--json")
		}
		mon := exec.Command(filepath.Join(binDir, "cxlregionctl"), args...)
		mon.Env = d.env()
		stdout, err := mon.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := mon.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1000)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Let monitor subscribe before the change.
		time.Sleep(300 * time.Millisecond)
		// Earlier regions, and a name the kernel reuses.
		for range 3 {
			d.mustCtl("delete", strings.TrimSpace(d.mustCtl("create", "--decoder", "decoder0.0", "--size", "256M")))
		}
		name := strings.TrimSpace(d.mustCtl("create", "--decoder", "decoder0.0", "--size", "256M"))
		d.mustCtl("delete", name)

		var seen []string
		deadline := time.After(15 * time.Second)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				if asJSON {
					var ev api.Event
					strictDecode(t, []byte(l), &ev)
					requireKeys(t, []byte(l), "time", "event", "object")
					if _, err := time.Parse(time.RFC3339Nano, ev.Time); err != nil {
						t.Errorf("event time %q: %v", ev.Time, err)
					}
					if strings.HasPrefix(ev.Event, "region_") {
						if ev.Region == nil {
							t.Fatalf("%s without its region: %s", ev.Event, l)
						}
						raw, _ := json.Marshal(ev.Region)
						checkRegion(t, raw)
						if ev.Event == api.EventRegionChanged && len(ev.Changed) == 0 {
							t.Errorf("region_changed without the changed properties: %s", l)
						}
					}
					if ev.Region == nil || ev.Region.Region == name {
						seen = append(seen, ev.Event)
					}
					if ev.Event == api.EventRegionRemoved && ev.Region.Region == name {
						break read
					}
				} else {
					seen = append(seen, l)
					if strings.Contains(l, "region_removed "+name) {
						break read
					}
				}
			case <-deadline:
				t.Fatalf("monitor (json=%v) did not report the removal within 15s; saw %q", asJSON, seen)
			}
		}
		// One create is one region_added, one delete one region_removed:
		// never added, removed, added again.
		var lifecycle []string
		for _, e := range seen {
			for _, kind := range []string{api.EventRegionAdded, api.EventRegionRemoved} {
				if e == kind || strings.Contains(e, " "+kind+" "+name+" ") {
					lifecycle = append(lifecycle, kind)
				}
			}
		}
		if want := []string{api.EventRegionAdded, api.EventRegionRemoved}; !slices.Equal(lifecycle, want) {
			t.Errorf("monitor (json=%v) saw %q for one create and one delete, want %q; all events:\n%s", asJSON, lifecycle, want, strings.Join(seen, "\n"))
		}
		_ = mon.Process.Signal(syscall.SIGINT)
		if err := mon.Wait(); err != nil {
			t.Errorf("monitor after SIGINT: %v", err)
		}
	}
}

// A command run under `cxlregionctl lock` holds the root decoder's lock
// file, which the daemon's writer takes too: a delete waits for it.
func TestCLILockSerializesWithTheDaemon(t *testing.T) {
	d := startDaemon(t)
	name := strings.TrimSpace(d.mustCtl("create", "--decoder", "decoder0.0", "--size", "256M"))
	lockDir := filepath.Join(d.dir, "lock")
	holder, holderErr := d.holdLock("1.5")
	start := time.Now()
	d.mustCtl("delete", name)
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("delete finished %s after starting while the lock was held for 1.5s", waited)
	}
	if err := holder.Wait(); err != nil {
		t.Errorf("lock -- sleep: %v %s", err, holderErr.String())
	}
	if r := d.ctl("lock", "decoder0.0", "--lock-dir", lockDir, "--", "sh", "-c", "exit 42"); r.code != 42 {
		t.Errorf("lock exit %d, want the command's 42", r.code)
	}
}

func TestCLICompletion(t *testing.T) {
	d := startDaemon(t)
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if out := d.mustCtl("completion", shell); !strings.Contains(out, "cxlregionctl") {
			t.Errorf("completion %s: %q", shell, out[:min(len(out), 200)])
		}
	}
	d.mustCtl("create", "--decoder", "decoder0.0", "--size", "256M")
	// Dynamic completion asks the daemon for names.
	if out := d.mustCtl("__complete", "delete", ""); !strings.Contains(out, "region0") {
		t.Errorf("completion of delete's argument: %q", out)
	}
	if out := d.mustCtl("__complete", "create", "--decoder", ""); !strings.Contains(out, "decoder0.3") {
		t.Errorf("completion of --decoder: %q", out)
	}
}

// e2eVersion is api.FullVersion() of the binaries build() makes.
const e2eVersion = "0.0.0~e2e (git e2e)"

// TestVersionOneFormat: both binaries' --version and the daemon's D-Bus
// Version property say the same thing, in the one format.
func TestVersionOneFormat(t *testing.T) {
	d := startDaemon(t)
	for prog, want := range map[string]string{"cxlregiond": "cxlregiond " + e2eVersion + "\n", "cxlregionctl": "cxlregionctl " + e2eVersion + "\n"} {
		out, err := exec.Command(filepath.Join(binDir, prog), "--version").Output()
		if err != nil || string(out) != want {
			t.Errorf("%s --version = %q, %v; want %q", prog, out, err, want)
		}
	}
	st := checkStatus(t, []byte(d.mustCtl("status", "--json")))
	if st.Version != e2eVersion {
		t.Errorf("D-Bus Version = %q, want %q", st.Version, e2eVersion)
	}
}

// lock asks the running daemon: its lock directory (the daemon runs with a
// --lock-dir of its own, and lock is given none) and whether the root
// decoder exists (one that does not exits 3 and the command never runs).
// Mutation: drop the Manager.LockDirectory lookup in cxlregionctl lock and
// the first case fails (no /run/cxlregiond/lock here); skip the root
// decoder check and the second runs its command.
func TestCLILockAsksTheDaemon(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("flock (util-linux) not found")
	}
	d := startDaemon(t)
	held := filepath.Join(d.dir, "lock", "decoder0.0.lock")
	// flock -n exits 99 when someone else holds the lock: lock holds the
	// daemon's lock file.
	if r := d.ctl("lock", "decoder0.0", "--", flock, "-n", "-E", "99", held, "true"); r.code != 99 || r.stderr != "" {
		t.Errorf("lock decoder0.0 (no --lock-dir): exit %d, stderr %q; want 99 (the daemon's lock file held) and no warning", r.code, r.stderr)
	}
	ran := filepath.Join(d.dir, "ran")
	r := d.ctl("lock", "decoder9.9", "--", "touch", ran)
	if want := "cxlregionctl: lock decoder9.9: cxlregiond has no such root decoder (cxlregionctl status lists them)\n"; r.code != 3 || r.stderr != want {
		t.Errorf("lock decoder9.9: exit %d, stderr %q; want 3 and %q", r.code, r.stderr, want)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Errorf("lock decoder9.9 ran its command")
	}
	other := t.TempDir()
	if r := d.ctl("lock", "decoder0.0", "--lock-dir", other, "--", "touch", ran); r.code != 2 || !strings.Contains(r.stderr, "cxlregiond locks in "+filepath.Join(d.dir, "lock")) {
		t.Errorf("lock --lock-dir elsewhere: exit %d, stderr %q; want 2 naming the daemon's directory", r.code, r.stderr)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Errorf("lock --lock-dir elsewhere ran its command")
	}
}

// monitor follows the daemon across a restart, saying so on stderr, and
// with --no-reconnect exits 7 instead. Mutation: make monitor return on
// errDaemonLeft even with reconnect and the region created after the
// restart is never seen.
func TestCLIMonitorSurvivesRestart(t *testing.T) {
	d := startDaemon(t, "--sim-state", filepath.Join(t.TempDir(), "sim.state"))
	type monitorProc struct {
		cmd    *exec.Cmd
		lines  chan string
		stderr *syncBuffer
	}
	startMonitor := func(args ...string) *monitorProc {
		m := &monitorProc{cmd: exec.Command(filepath.Join(binDir, "cxlregionctl"), append([]string{"monitor", "--json"}, args...)...),
			lines: make(chan string, 1000), stderr: &syncBuffer{}}
		m.cmd.Env = d.env()
		m.cmd.Stderr = m.stderr
		stdout, err := m.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := m.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.cmd.Process.Kill() })
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				m.lines <- sc.Text()
			}
			close(m.lines)
		}()
		return m
	}
	waitAdded := func(m *monitorProc, name string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-m.lines:
				if !ok {
					t.Fatalf("monitor exited before region_added %s; stderr:\n%s", name, m.stderr)
				}
				var ev api.Event
				strictDecode(t, []byte(l), &ev)
				if ev.Event == api.EventRegionAdded && ev.Region != nil && ev.Region.Region == name {
					return
				}
			case <-deadline:
				t.Fatalf("no region_added %s within 20s; stderr:\n%s", name, m.stderr)
			}
		}
	}

	mon := startMonitor()
	quit := startMonitor("--no-reconnect")
	time.Sleep(300 * time.Millisecond) // both subscribed
	first := strings.TrimSpace(d.mustCtl("create", "--decoder", "decoder0.0", "--size", "256M"))
	waitAdded(mon, first)

	d.restart()
	second := strings.TrimSpace(d.mustCtl("create", "--decoder", "decoder0.0", "--size", "256M"))
	waitAdded(mon, second)
	for _, want := range []string{"cxlregionctl: monitor: cxlregiond left the bus; waiting for it to come back", "cxlregionctl: monitor: cxlregiond is back"} {
		if !strings.Contains(mon.stderr.String(), want) {
			t.Errorf("monitor's stderr lacks %q:\n%s", want, mon.stderr)
		}
	}
	_ = mon.cmd.Process.Signal(syscall.SIGINT)
	if err := mon.cmd.Wait(); err != nil {
		t.Errorf("monitor after SIGINT: %v", err)
	}

	done := make(chan error, 1)
	go func() { done <- quit.cmd.Wait() }()
	select {
	case <-done:
		if code := quit.cmd.ProcessState.ExitCode(); code != api.ExitUnreachable || !strings.Contains(quit.stderr.String(), "monitor: cxlregiond left the bus") {
			t.Errorf("monitor --no-reconnect: exit %d, stderr %q; want %d, left the bus", code, quit.stderr, api.ExitUnreachable)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("monitor --no-reconnect still runs after the restart")
	}
}

// Errors name each thing once, one prefix per layer, the way cxl's read:
// the CLI's name, the operation and its object, then the reason (step,
// attribute, errno). Mutation: put the object back into the daemon's
// not-found message, or KernelError's operation back into its text, and
// these lines repeat themselves again.
func TestCLIErrorMessagesSayEachThingOnce(t *testing.T) {
	d := startDaemon(t, "--sim-hypervisor") // 6.12 under a hypervisor: commit fails with ENXIO
	tests := []struct {
		args   []string
		code   int
		stderr string // exact, or a prefix when it ends in "…"
	}{
		{[]string{"info", "region9"}, 3, "cxlregionctl: region9: no such region\n"},
		{[]string{"delete", "region9"}, 3, "cxlregionctl: region9: no such region\n"},
		{[]string{"enable", "region9"}, 3, "cxlregionctl: enable region9: no such region\n"},
		{[]string{"create", "--decoder", "decoder9.9", "--size", "256M"}, 3, "cxlregionctl: create on decoder9.9: root decoder not found\n"},
		{[]string{"create", "--decoder", "decoder0.0", "--size", "1024G"}, 2, "cxlregionctl: create on decoder0.0: size 1099511627776: larger than the window (4294967296): invalid argument\n"},
		{[]string{"create", "--decoder", "decoder0.0", "--size", "256M"}, 6, "cxlregionctl: create on decoder0.0: write bus/cxl/devices/region0/commit: no such device or address (ENXIO): the kernel could not synchronize…"},
	}
	for _, tt := range tests {
		r := d.ctl(tt.args...)
		prefix, partial := strings.CutSuffix(tt.stderr, "…")
		ok := r.stderr == tt.stderr
		if partial {
			ok = strings.HasPrefix(r.stderr, prefix)
		}
		if r.code != tt.code || !ok {
			t.Errorf("cxlregionctl %s: exit %d, stderr %q; want %d, %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.code, tt.stderr)
		}
	}
}

// Ctrl-C on a create that is still waiting (here: queued behind a lock
// holder) cancels it through Job.Cancel: the command says so and exits
// with the job's Cancelled error, and no region is left.
func TestCLICreateInterruptCancels(t *testing.T) {
	d := startDaemon(t)
	holder, _ := d.holdLock("3")
	create := exec.Command(filepath.Join(binDir, "cxlregionctl"), "create", "--decoder", "decoder0.0", "--size", "256M")
	create.Env = d.env()
	var stdout, stderr bytes.Buffer
	create.Stdout, create.Stderr = &stdout, &stderr
	if err := create.Start(); err != nil {
		t.Fatal(err)
	}
	conn := d.conn()
	waitUntil(t, "the create's job", func() bool {
		var objs api.ManagedObjects
		if err := conn.Object(api.BusName, api.RootPath).Call(api.ObjectManagerInterface+".GetManagedObjects", 0).Store(&objs); err != nil {
			return false
		}
		for p := range objs {
			if api.IsJobPath(p) {
				return true
			}
		}
		return false
	})
	if err := create.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	err := create.Wait()
	t.Logf("create exited %s after SIGINT; stderr %q", time.Since(sent), stderr.String())
	if code := create.ProcessState.ExitCode(); code != api.ExitFailure || !strings.Contains(stderr.String(), "cancelling") ||
		!strings.Contains(stderr.String(), "canceled") {
		t.Errorf("interrupted create: %v, exit %d, stdout %q, stderr %q; want exit %d, cancelled", err, code, stdout.String(), stderr.String(), api.ExitFailure)
	}
	if err := holder.Wait(); err != nil {
		t.Errorf("lock -- sleep: %v", err)
	}
	if out := d.mustCtl("list"); strings.Count(out, "\n") != 1 {
		t.Errorf("a cancelled create left a region:\n%s", out)
	}
}

// waitUntil polls cond until it holds, for at most 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
