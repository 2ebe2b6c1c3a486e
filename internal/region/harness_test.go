package region

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/cxlsim"
	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// harness runs engines on one simulated unpatched kernel and one state
// directory, so a test can abandon an engine and start another, as a
// restarted daemon would.
type harness struct {
	t        *testing.T
	k        *cxlsim.Kernel
	fs       *sysfs.FS
	stateDir string
	lockDir  string
	writers  *lock.Registry
	eng      *Engine
	stop     func()
	// journalErrs counts calls TestFaults saw refused by a state directory
	// that could not be written.
	journalErrs int
}

func newHarness(t *testing.T, opts ...cxlsim.Option) *harness {
	t.Helper()
	base := []cxlsim.Option{
		cxlsim.WithDeleteDelay(time.Millisecond),
		cxlsim.WithRegisterDelay(20 * time.Millisecond),
	}
	k, err := cxlsim.New(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	dir := t.TempDir()
	h := &harness{t: t, k: k, fs: sysfs.New(k), stateDir: filepath.Join(dir, "state"), lockDir: filepath.Join(dir, "lock")}
	return h
}

// testConfig is the engine configuration of the tests: short windows so the
// tests stay fast, long enough that the kernel's asynchronous work in the
// simulator (20 ms registration) is what the engine waits for.
func (h *harness) testConfig() Config {
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("CXLREGIOND_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return Config{
		FS:             h.fs,
		Events:         h.k.Subscribe(4096),
		StateDir:       h.stateDir,
		BootID:         "test-boot",
		SettleWindow:   150 * time.Millisecond,
		BoundQuiet:     30 * time.Millisecond,
		SettlePoll:     5 * time.Millisecond,
		DefaultTimeout: 20 * time.Second,
		Logger:         logger,
	}
}

// start runs a new engine (abandoning any previous one) and waits for it to
// be ready.
func (h *harness) start(mod func(*Config)) *Engine {
	h.t.Helper()
	writers, err := lock.NewRegistry(h.fs, h.lockDir)
	if err != nil {
		h.t.Fatal(err)
	}
	cfg := h.testConfig()
	cfg.Writers = writers
	if mod != nil {
		mod(&cfg)
	}
	eng, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	h.stop = func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("engine Run: %v", err)
		}
		if cfg.Events != nil {
			cfg.Events.Close()
		}
	}
	h.t.Cleanup(func() {
		if h.stop != nil {
			h.stop()
			h.stop = nil
		}
	})
	select {
	case <-eng.Ready():
	case err := <-done:
		h.t.Fatalf("engine stopped before ready: %v", err)
	case <-time.After(20 * time.Second):
		h.t.Fatal("engine not ready")
	}
	h.eng, h.writers = eng, writers
	return eng
}

func (h *harness) shutdown() {
	if h.stop != nil {
		h.stop()
		h.stop = nil
	}
}

func (h *harness) counts() (warn, bug int) { return h.k.Counts() }

func (h *harness) requireClean() {
	h.t.Helper()
	if warn, bug := h.counts(); warn != 0 || bug != 0 {
		h.t.Fatalf("simulated kernel printed %d WARNING and %d BUG:\n%s", warn, bug, lastLines(h.k.Log(), 40))
	}
}

// rawCreate makes a region the way another tool would: straight to the
// simulated kernel, no daemon. It returns the region's name.
func (h *harness) rawCreate(root, typ string, size uint64, targets []string, bind bool) string {
	h.t.Helper()
	w := func(attr, val string) {
		h.t.Helper()
		if err := h.fs.Write(attr, val); err != nil {
			h.t.Fatalf("raw write: %v", err)
		}
	}
	attr := func(dev, a string) string {
		p, err := sysfs.DeviceAttr(dev, a)
		if err != nil {
			h.t.Fatal(err)
		}
		return p
	}
	name, err := h.fs.NextRegionName(root, typ)
	if err != nil {
		h.t.Fatal(err)
	}
	w(attr(root, "create_"+typ+"_region"), name)
	w(attr(name, "interleave_granularity"), "256")
	w(attr(name, "interleave_ways"), strconv.Itoa(len(targets)))
	if typ == "pmem" {
		w(attr(name, "uuid"), newUUID())
	}
	w(attr(name, "size"), strconv.FormatUint(size, 10))
	for i, t := range targets {
		w(attr(t, "mode"), typ)
		w(attr(t, "dpa_size"), strconv.FormatUint(size/uint64(len(targets)), 10))
		w(attr(name, "target"+strconv.Itoa(i)), t)
	}
	w(attr(name, "commit"), "1")
	if bind {
		w(sysfs.RegionBindPath, name)
	}
	return name
}

// holdWriter takes a root decoder's writer for the test, as another
// operation would, so that requests queue behind it.
func (h *harness) holdWriter(rootDecoder string) (*lock.Writer, *lock.Held) {
	h.t.Helper()
	w, err := h.writers.Writer(rootDecoder)
	if err != nil {
		h.t.Fatal(err)
	}
	held, err := w.Acquire(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return w, held
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func lastLines(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := ""
	for _, l := range lines {
		out += l + "\n"
	}
	return out
}

func isErr(err, target error) bool { return errors.Is(err, target) }
