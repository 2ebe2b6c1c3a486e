package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/service/dbustest"
)

// TestCrashLoop kills the daemon with SIGKILL at a random moment while
// four cxlregionctl clients create, delete, enable and disable regions,
// then starts it again on the same persisted simulated kernel
// (--sim-state), state directory and lock directory, CRASHLOOP_ITERATIONS
// times (default 5; `make crashloop` runs 200). After each restart:
//
//   - the daemon starts (its journal is readable and recovered);
//   - every region of the simulated kernel is in `list --json` and
//     nothing else is (no half-made region left unreported);
//   - no delete_region write in the whole log named a region that was not
//     there (no generation deleted twice), and the kernel printed no
//     WARNING or BUG;
//   - every client call ended with an answer or exit 7 (daemon
//     unreachable), which the client retries.
//
// It prints "crashloop: N iterations, K kills, C client calls (exit codes
// {code:count}), V violations".
//
// Mutation: in recoverDelete (internal/region/recover.go) write
// delete_region when refreshRegion finds the region gone, and a restart
// after a kill during a delete writes a second delete_region: "second
// delete_region write" (60 iterations: red at the first such kill).
func TestCrashLoop(t *testing.T) {
	requireEnv(t)
	iterations := 5
	if s := os.Getenv("CRASHLOOP_ITERATIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CRASHLOOP_ITERATIONS=%q", s)
		}
		iterations = n
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bus, err := dbustest.StartBus(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	simLog := filepath.Join(dir, "sim.log")
	simState := filepath.Join(dir, "sim.json")
	env := append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Address)
	// The probe daemon{} only carries what waitReady and ctl need.
	d := &daemon{t: t, dir: dir, bus: bus.Address, simLog: simLog, exited: make(chan struct{})}
	start := func() *exec.Cmd {
		cmd := exec.Command(filepath.Join(binDir, "cxlregiond"), "--simulate", "--sim-log", simLog, "--sim-state", simState,
			"--state-dir", filepath.Join(dir, "state"), "--lock-dir", filepath.Join(dir, "lock"),
			"--metrics-listen", "off", "--settle-window", "100ms")
		cmd.Env = env
		d.stderr = &syncBuffer{}
		cmd.Stderr = d.stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		d.cmd, d.exited = cmd, make(chan struct{})
		exited := d.exited
		go func() { _ = cmd.Wait(); close(exited) }()
		d.waitReady()
		return cmd
	}

	var calls, kills, violations int
	exits := map[int]int{}
	var mu sync.Mutex
	violation := func(format string, args ...any) {
		mu.Lock()
		violations++
		mu.Unlock()
		t.Errorf(format, args...)
	}
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	chk := &crashChecker{t: t, d: d, simState: simState, violation: violation, live: map[string]bool{}}
	for i := range iterations {
		chk.endLife()
		cmd := start()
		chk.afterStart()
		if t.Failed() {
			t.Fatalf("iteration %d; daemon stderr:\n%s\nkernel writes:\n%s", i, d.stderr, strings.Join(d.simLines(), "\n"))
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := range 4 {
			seed := rng.Uint64()
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(c), seed))
				for {
					select {
					case <-stop:
						return
					default:
					}
					args := clientOp(r, kernelRegions(simState))
					res := d.run(exec.Command(filepath.Join(binDir, "cxlregionctl"), args...))
					mu.Lock()
					calls++
					exits[res.code]++
					mu.Unlock()
					switch res.code {
					case api.ExitOK, api.ExitInvalidArgument, api.ExitNotFound, api.ExitBusy, api.ExitKernelError:
						// An answer: done, or refused with a reason (enable of a
						// region another client is still making is invalid).

					case api.ExitUnreachable:
						time.Sleep(20 * time.Millisecond) // the daemon is restarting: retry
					default:
						violation("iteration %d: cxlregionctl %s: exit %d: %s", i, strings.Join(args, " "), res.code, res.stderr)
					}
				}
			})
		}
		time.Sleep(time.Duration(100+rng.IntN(900)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-d.exited
		kills++
		close(stop)
		wg.Wait()
	}
	chk.endLife()
	start()
	chk.afterStart()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		t.Error("cxlregiond did not stop within 30s of SIGTERM")
	}
	chk.endLife()
	fmt.Printf("crashloop: %d iterations, %d kills, %d client calls (exit codes %v), %d violations\n", iterations, kills, calls, exits, violations)
}

// clientOp is one random cxlregionctl call of the load; the region it names
// is mostly one the kernel has (regions), sometimes any name.
func clientOp(r *rand.Rand, regions []string) []string {
	region := "region" + strconv.Itoa(r.IntN(6))
	if len(regions) > 0 && r.IntN(5) != 0 {
		region = regions[r.IntN(len(regions))]
	}
	switch r.IntN(6) {
	case 0, 1:
		if r.IntN(2) == 0 {
			return []string{"create", "--decoder", "decoder0.0", "--type", "pmem", "--size", "256M"}
		}
		return []string{"create", "--decoder", "decoder0.1", "--type", "pmem", "--size", "512M"} // 2 ways
	case 2, 3:
		return []string{"delete", region, "--timeout", "10s"}
	case 4:
		return []string{"disable", region}
	default:
		return []string{"enable", region}
	}
}

var simWrite = regexp.MustCompile(`cxlsim: write (\S+) "([^"]*)" -> (\S+)`)

// crashChecker follows the simulated kernel across the daemon's lives. The
// simulator lives in the daemon's process: a SIGKILL between a write and
// the save of the state file loses that write, as model choice 19 of
// internal/cxlsim says, so each life's log is read against the regions the
// state file held when that life began.
type crashChecker struct {
	t         *testing.T
	d         *daemon
	simState  string
	violation func(string, ...any)
	offset    int             // log lines already checked
	live      map[string]bool // root/region registered, as of the line at offset
}

// persisted reads the simulated kernel's state file: root/region of every
// region.
func (c *crashChecker) persisted() map[string]bool {
	live := map[string]bool{}
	b, err := os.ReadFile(c.simState)
	if os.IsNotExist(err) {
		return live
	}
	if err != nil {
		c.t.Fatal(err)
	}
	var st struct {
		Regions []struct {
			Name        string `json:"name"`
			RootDecoder string `json:"root_decoder"`
		} `json:"regions"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		c.t.Fatalf("simulated kernel state: %v", err)
	}
	for _, r := range st.Regions {
		live[r.RootDecoder+"/"+r.Name] = true
	}
	return live
}

// kernelRegions lists the simulated kernel's regions for the clients' load
// (nil when the state file cannot be read: the load then names any region).
func kernelRegions(simState string) []string {
	b, err := os.ReadFile(simState)
	if err != nil {
		return nil
	}
	var st struct {
		Regions []struct {
			Name string `json:"name"`
		} `json:"regions"`
	}
	if json.Unmarshal(b, &st) != nil {
		return nil
	}
	var names []string
	for _, r := range st.Regions {
		names = append(names, r.Name)
	}
	return names
}

// endLife checks the log of the life that just ended (the daemon is not
// running) and starts the next from the persisted state.
func (c *crashChecker) endLife() {
	lines := c.d.simLines()
	for _, l := range lines[min(c.offset, len(lines)):] {
		m := simWrite.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		key := filepath.Base(filepath.Dir(m[1])) + "/" + m[2]
		switch filepath.Base(m[1]) {
		case "create_pmem_region", "create_ram_region":
			if m[3] == "ok" {
				c.live[key] = true
			}
		case "delete_region":
			if !c.live[key] {
				c.violation("second delete_region write: %s", l)
			}
			if m[3] == "ok" {
				delete(c.live, key)
			}
		}
	}
	c.offset = len(lines)
	c.live = c.persisted()
}

// afterStart checks the restarted daemon against the simulated kernel.
func (c *crashChecker) afterStart() {
	c.t.Helper()
	warn, bug := c.d.warnings()
	if warn != 0 || bug != 0 {
		c.violation("simulated kernel printed %d WARNING, %d BUG", warn, bug)
	}
	out := c.d.mustCtl("list", "--json")
	var listed []api.Region
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		c.t.Fatalf("list --json: %v\n%s", err, out)
	}
	var got, want []string
	for _, r := range listed {
		got = append(got, r.Region)
	}
	for k := range c.persisted() {
		want = append(want, filepath.Base(k))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		c.violation("after restart the daemon lists %v, the kernel has %v", got, want)
	}
}
