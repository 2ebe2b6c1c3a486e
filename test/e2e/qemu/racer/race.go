package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// raceConfig is one scenario: how regions are made, how far, and who deletes.
type raceConfig struct {
	sys, root, endpoint string
	state               regionState
	cycles              int
	settle              time.Duration
	size                uint64
	writers             int
	deleter             string // raw | flock | exec
	lockFile            string
	execCmd             string // deleter command, {} = region name, {root} = root decoder
	createCmd           string // empty: raw handshake; else a command that creates one region
	execTimeout         time.Duration
	expectDPAFreed      bool
	openEarly           bool // raw/flock: open delete_region before the barrier
	ndWait              bool // bound: wait for the nd side before the settle delay
}

// tally is what the writers saw, summed over the cycles run. The mutex lets
// a SIGTERM (the guest's per-scenario timeout) print what was seen so far.
type tally struct {
	mu       sync.Mutex
	cycles   int
	outcomes map[string]int // per write: OK, ENODEV, ..., exitN
	pairs    map[string]int // per cycle: the sorted outcomes of all writers
	multiOK  int            // cycles in which more than one writer succeeded
	ok       int            // successful writes (or commands)
	failures int            // broken expectations other than the race itself
	notes    []string
}

func (t *tally) fail(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failures++
	if len(t.notes) < 5 {
		t.notes = append(t.notes, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(os.Stderr, "racer: cycle %d: %s\n", t.cycles+1, fmt.Sprintf(format, args...))
}

func runRace(args []string) error {
	var c raceConfig
	var state string
	fs := flag.NewFlagSet("race", flag.ContinueOnError)
	fs.StringVar(&c.sys, "sys", "/sys", "sysfs mount point")
	fs.StringVar(&c.root, "root", "", "root decoder (default: the one with create_pmem_region)")
	fs.StringVar(&c.endpoint, "endpoint", "", "endpoint decoder (default: first endpoint*/decoder*)")
	fs.StringVar(&state, "state", "committed", "region state before the deletes: created|uncommitted|committed|bound")
	fs.IntVar(&c.cycles, "cycles", 100, "regions to create and delete")
	fs.DurationVar(&c.settle, "settle", 200*time.Millisecond, "extra wait after the nd side of a bound region settled")
	fs.Uint64Var(&c.size, "size", 256<<20, "region size in bytes")
	fs.IntVar(&c.writers, "writers", 2, "concurrent deleters per region")
	fs.StringVar(&c.deleter, "deleter", "raw", "raw (open+write+close) | flock (same, under flock of -lock-file) | exec (-exec command)")
	fs.StringVar(&c.lockFile, "lock-file", "/run/lock/cxltest-decoder.lock", "lock file of -deleter flock")
	fs.StringVar(&c.execCmd, "exec", "", "deleter command for -deleter exec; {} is the region, {root} the root decoder")
	fs.StringVar(&c.createCmd, "create", "", "command that creates one region (default: raw create handshake); {root} is the root decoder")
	fs.DurationVar(&c.execTimeout, "exec-timeout", 60*time.Second, "limit for one -exec or -create command")
	fs.BoolVar(&c.expectDPAFreed, "expect-dpa-freed", false, "count a failure when a delete leaves endpoint DPA allocated")
	fs.BoolVar(&c.ndWait, "nd-wait", true, "bound: wait until the nd region is bound with its dax seed (false provokes the nd oops of docs/kernel.md#nd-oops: for the harness's own oops test)")
	fs.BoolVar(&c.openEarly, "open-early", true, "raw/flock: open delete_region before the barrier (false: open+write+close after it, as `echo` does; needed under the daemon's guard, which holds a writer from open to close)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if c.state, err = parseState(state); err != nil {
		return err
	}
	if c.deleter == "exec" && c.execCmd == "" {
		return errors.New("-deleter exec needs -exec")
	}
	topo, err := discover(c.sys, c.root, c.endpoint)
	if err != nil {
		return err
	}
	t := &tally{outcomes: map[string]int{}, pairs: map[string]int{}}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- raceCycles(c, topo, t) }()
	var runErr error
	select {
	case runErr = <-done:
	case sig := <-sigs:
		// A deleter is stuck (a held open, a hung kernel): report the cycles
		// that finished; the stuck goroutine dies with the process.
		t.mu.Lock()
		runErr = fmt.Errorf("%v in cycle %d (a deleter or create did not return)", sig, t.cycles+1)
		t.mu.Unlock()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	printResult(c, topo, t, runErr)
	return runErr
}

func raceCycles(c raceConfig, topo topology, t *tally) error {
	if left := topo.regions(); len(left) > 0 {
		return fmt.Errorf("regions left over before the first cycle: %v", left)
	}
	for cycle := 1; cycle <= c.cycles; cycle++ {
		name, err := create(c, topo)
		if err != nil {
			return fmt.Errorf("cycle %d: %w", cycle, err)
		}
		outcomes := deleteConcurrently(c, topo, name)
		t.mu.Lock()
		t.record(outcomes)
		t.mu.Unlock()
		if err := cleanUp(c, topo, name, t); err != nil {
			return fmt.Errorf("cycle %d: %w", cycle, err)
		}
		t.mu.Lock()
		t.cycles++
		t.mu.Unlock()
	}
	return nil
}

func create(c raceConfig, topo topology) (string, error) {
	if c.createCmd == "" {
		name, err := topo.createRaw()
		if err != nil {
			return "", err
		}
		return name, topo.bringTo(name, c.state, c.size, c.settle, c.ndWait)
	}
	before := topo.regions()
	out, err := runCmd(c.execTimeout, expand(c.createCmd, "", topo.root))
	if err != nil {
		return "", fmt.Errorf("create command: %w: %s", err, strings.TrimSpace(out))
	}
	name := ""
	for _, r := range topo.regions() {
		if !contains(before, r) {
			name = r
		}
	}
	if name == "" {
		return "", fmt.Errorf("create command succeeded but no new region under %s: %s", topo.root, strings.TrimSpace(out))
	}
	if c.state == stateBound {
		if err := topo.waitNDSettled(); err != nil {
			return "", err
		}
		time.Sleep(c.settle)
	}
	return name, nil
}

// deleteConcurrently releases every deleter at the same instant: each runs on
// its own OS thread pinned to its own CPU and spins on a shared counter.
// Raw and flock writers open delete_region before the barrier and write after
// it: the window of the race is a few microseconds (from one writer's lookup
// of the region to the other's device_del), and path lookups of unequal
// length before the write would let the writers drift apart by more.
func deleteConcurrently(c raceConfig, topo topology, name string) []string {
	outcomes := make([]string, c.writers)
	var ready atomic.Int32
	var wg sync.WaitGroup
	for i := range c.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// No UnlockOSThread: the pinned thread exits with the goroutine.
			runtime.LockOSThread()
			pinToCPU(i)
			del := prepareDelete(c, topo, name)
			ready.Add(1)
			for spins := 0; ready.Load() < int32(c.writers); spins++ {
				if spins%(1<<20) == 0 && spins > 0 {
					runtime.Gosched() // a writer without a CPU yet must get one
				}
			}
			outcomes[i] = del()
		}()
	}
	wg.Wait()
	return outcomes
}

// pinToCPU keeps writer i on its own CPU: two writer threads left to the
// scheduler often share one vCPU and then take turns instead of overlapping.
func pinToCPU(i int) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil || all.Count() < 2 {
		return
	}
	cpus := make([]int, 0, all.Count())
	for c := range 1024 {
		if all.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	var one unix.CPUSet
	one.Set(cpus[i%len(cpus)])
	_ = unix.SchedSetaffinity(0, &one) // best effort: the race still runs unpinned
}

// prepareDelete does what can be done before the barrier and returns the
// delete itself, which reports the writer's outcome.
func prepareDelete(c raceConfig, topo topology, name string) func() string {
	if c.deleter == "exec" {
		return prepareExec(c, topo, name)
	}
	attr := topo.cxl(topo.root, "delete_region")
	if !c.openEarly {
		// Resolve the directory now and open the file after the barrier:
		// every writer still does its own open+write+close of delete_region
		// (what the guard intercepts), with a one-component lookup instead
		// of a walk through /sys/bus symlinks that would spread the writers.
		dir, err := unix.Open(topo.cxl(topo.root), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return func() string { return "open:" + errnoName(err) }
		}
		return func() string {
			defer unix.Close(dir)
			return errnoName(writeLocked(c, dir, name))
		}
	}
	fd, err := unix.Open(attr, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return func() string { return "open:" + errnoName(err) }
	}
	return func() string {
		defer unix.Close(fd)
		if c.deleter == "flock" {
			// A lock file per writer open: flock conflicts between open file
			// descriptions, so two goroutines exclude each other like two processes.
			f, err := os.OpenFile(c.lockFile, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				return "lockerr"
			}
			defer f.Close() // drops the lock after the write
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
				return "lockerr"
			}
		}
		_, err := unix.Write(fd, []byte(name+"\n"))
		return errnoName(err)
	}
}

// writeLocked is one open+write+close of delete_region in dir, under the
// lock file for -deleter flock.
func writeLocked(c raceConfig, dir int, name string) error {
	if c.deleter == "flock" {
		f, err := os.OpenFile(c.lockFile, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			return err
		}
	}
	fd, err := unix.Openat(dir, "delete_region", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open delete_region: %w", err)
	}
	_, werr := unix.Write(fd, []byte(name+"\n"))
	if err := unix.Close(fd); werr == nil {
		werr = err
	}
	return werr
}

// prepareExec starts the deleter command held behind a pipe (racer hold)
// and returns its release.
func prepareExec(c raceConfig, topo topology, name string) func() string {
	argv := expand(c.execCmd, name, topo.root)
	self, err := os.Executable()
	if err != nil {
		return func() string { return "execerr" }
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return func() string { return "execerr" }
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.execTimeout)
	cmd := exec.CommandContext(ctx, self, append([]string{"hold", "--"}, argv...)...)
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pr, &out, &out
	startErr := cmd.Start()
	pr.Close()
	return func() string {
		defer cancel()
		pw.Close() // the release
		if startErr != nil {
			fmt.Fprintf(os.Stderr, "racer: deleter of %s: %v\n", name, startErr)
			return "execerr"
		}
		err := cmd.Wait()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return "OK"
		case ctx.Err() != nil:
			fmt.Fprintf(os.Stderr, "racer: deleter of %s: %v after %v\n", name, argv, c.execTimeout)
			return "timeout"
		case errors.As(err, &exit):
			fmt.Fprintf(os.Stderr, "racer: deleter of %s: exit %d: %s\n", name, exit.ExitCode(), firstLine(out.String()))
			return fmt.Sprintf("exit%d", exit.ExitCode())
		default:
			fmt.Fprintf(os.Stderr, "racer: deleter of %s: %v\n", name, err)
			return "execerr"
		}
	}
}

func errnoName(err error) string {
	if err == nil {
		return "OK"
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
		return fmt.Sprintf("errno%d", int(errno))
	}
	return "error"
}

func (t *tally) record(outcomes []string) {
	ok := 0
	for _, o := range outcomes {
		t.outcomes[o]++
		if o == "OK" {
			ok++
		}
	}
	t.ok += ok
	if ok > 1 {
		t.multiOK++
	}
	sorted := append([]string(nil), outcomes...)
	sort.Strings(sorted)
	t.pairs[strings.Join(sorted, "+")]++
}

// cleanUp makes sure the next cycle starts from an empty root decoder and a
// free endpoint, and records where the deleters left something behind.
func cleanUp(c raceConfig, topo topology, name string, t *tally) error {
	gone := func() bool { return !exists(topo.cxl(name)) }
	if err := waitFor(name+" removal", 10*time.Second, gone); err != nil {
		t.fail("%s survived its deleters", name)
		if err := writeAttr(topo.cxl(topo.root, "delete_region"), name); err != nil {
			return fmt.Errorf("removing %s left by the deleters: %w", name, err)
		}
		if err := waitFor(name+" removal", 10*time.Second, gone); err != nil {
			return err
		}
	}
	dpa, err := topo.endpointDPA()
	if err != nil {
		return err
	}
	if dpa != 0 {
		if c.expectDPAFreed {
			t.fail("%s deleted but %s dpa_size is %#x", name, topo.endpoint, dpa)
		}
		if err := topo.freeDPA(); err != nil {
			return err
		}
	}
	return nil
}

func expand(tmpl, region, root string) []string {
	fields := strings.Fields(tmpl)
	for i, f := range fields {
		f = strings.ReplaceAll(f, "{root}", root)
		fields[i] = strings.ReplaceAll(f, "{}", region)
	}
	return fields
}

func runCmd(limit time.Duration, argv []string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%v: %w", argv, ctx.Err())
	}
	return string(out), err
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// printResult prints the one line the guest script parses. Values hold no
// spaces except note, which runs to the end of the line.
func printResult(c raceConfig, topo topology, t *tally, runErr error) {
	note := strings.Join(t.notes, "; ")
	if runErr != nil {
		note = strings.TrimLeft(note+"; error: "+runErr.Error(), "; ")
	}
	if note == "" {
		note = "-"
	}
	fmt.Printf("RACER root=%s endpoint=%s state=%s deleter=%s writers=%d cycles=%d/%d ok=%d multi_ok=%d failures=%d outcomes=%s pairs=%s note=%s\n",
		topo.root, topo.endpoint, c.state, c.deleter, c.writers, t.cycles, c.cycles, t.ok, t.multiOK, t.failures,
		joinCounts(t.outcomes), joinCounts(t.pairs), strings.ReplaceAll(note, "\n", " "))
}

func joinCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}
