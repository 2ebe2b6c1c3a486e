package cxlsim

import (
	"fmt"
	"io"
	"time"
)

// Profiles: the kernels the captures come from.
const (
	Profile61  = "6.1"
	Profile612 = "6.12"
	// ProfileFixed is 6.12's tree with the upstream delete_region fix
	// (delete.go, deleteRegionStoreFixed): the shape of a kernel that no
	// longer races, so the daemon can be shown to work unchanged on it.
	ProfileFixed = "6.12-fixed"
)

// fixedDelete reports whether the profile carries the delete_region fix.
func fixedDelete(profile string) bool { return profile == ProfileFixed }

// Option configures New.
type Option func(*config) error

type config struct {
	topology      Topology
	profile       string
	deleteDelay   time.Duration // time inside delete_region_store between lookup and release
	registerDelay time.Duration // nd / dax registration after a region bind
	assembleTime  time.Duration // default duration of AutoAssemble
	teardownDelay time.Duration // per region, during a cxl_acpi unbind
	rebindDelay   time.Duration // endpoints return this long after a cxl_acpi bind
	hypervisor    bool
	systemRAM     bool
	logWriter     io.Writer
	stateFile     string
	clock         Clock
	logLines      int
}

func defaultConfig() config {
	return config{
		topology:      DefaultTopology(),
		profile:       Profile612,
		deleteDelay:   2 * time.Millisecond,
		registerDelay: 50 * time.Millisecond,
		assembleTime:  200 * time.Millisecond,
		teardownDelay: 5 * time.Millisecond,
		rebindDelay:   100 * time.Millisecond,
		clock:         realClock{},
		logLines:      100000,
	}
}

// WithTopology sets the hardware (default DefaultTopology()).
func WithTopology(t Topology) Option {
	return func(c *config) error {
		if err := t.Validate(); err != nil {
			return err
		}
		c.topology = t
		return nil
	}
}

// WithProfile selects the kernel: "6.1" (no create_ram_region, no region
// mode, no decoders_committed, no qos_class), "6.12" (default), or
// "6.12-fixed" (6.12 with the upstream delete_region fix).
func WithProfile(p string) Option {
	return func(c *config) error {
		if p != Profile61 && p != Profile612 && p != ProfileFixed {
			return fmt.Errorf("cxlsim: profile %q: want %q, %q or %q", p, Profile61, Profile612, ProfileFixed)
		}
		c.profile = p
		return nil
	}
}

// WithDeleteDelay sets the time delete_region_store spends between finding
// the region and releasing its devres action (default 2ms): the window of
// race 1.
func WithDeleteDelay(d time.Duration) Option {
	return func(c *config) error { c.deleteDelay = d; return nil }
}

// WithRegisterDelay sets how long after a region bind libnvdimm registers
// the nd region (pmem) or device-dax registers the dax device (ram)
// (default 50ms). Deleting or unbinding a pmem region inside this window
// oopses, as the captures show.
func WithRegisterDelay(d time.Duration) Option {
	return func(c *config) error { c.registerDelay = d; return nil }
}

// WithAssembleDuration sets the default duration of AutoAssemble (200ms).
func WithAssembleDuration(d time.Duration) Option {
	return func(c *config) error { c.assembleTime = d; return nil }
}

// WithTeardownDelay sets the time a cxl_acpi or cxl_port unbind spends on
// each region it tears down (default 5ms): the window of race 2.
func WithTeardownDelay(d time.Duration) Option {
	return func(c *config) error { c.teardownDelay = d; return nil }
}

// WithRebindDelay sets how long after a cxl_acpi bind the endpoints (and
// their memdevs' drivers) come back (default 100ms).
func WithRebindDelay(d time.Duration) Option {
	return func(c *config) error { c.rebindDelay = d; return nil }
}

// WithHypervisor makes the 6.12 profile refuse commit with ENXIO and a
// "Failed to synchronize CPU cache state" WARNING, as 6.12 does when the
// CPU advertises a hypervisor. No effect on 6.1.
func WithHypervisor(on bool) Option {
	return func(c *config) error { c.hypervisor = on; return nil }
}

// WithSystemRAM makes every ram region's dax device System RAM as soon as
// it registers: bound to kmem, its blocks online in ZONE_MOVABLE, as a
// host whose udev rule runs daxctl reconfigure-device -m system-ram does.
// For --simulate, whose clients cannot call ReconfigureSystemRAM.
func WithSystemRAM(on bool) Option {
	return func(c *config) error { c.systemRAM = on; return nil }
}

// WithLogWriter copies every log line (writes received, kernel WARNING and
// BUG blocks) to w, one write per line.
func WithLogWriter(w io.Writer) Option {
	return func(c *config) error { c.logWriter = w; return nil }
}

// WithStateFile keeps the whole model in path: loaded by New when the file
// exists, saved atomically after every completed mutation. New takes an
// exclusive lock on path+".lock" for the life of the Kernel.
func WithStateFile(path string) Option {
	return func(c *config) error { c.stateFile = path; return nil }
}

// WithClock replaces the wall clock (tests).
func WithClock(cl Clock) Option {
	return func(c *config) error { c.clock = cl; return nil }
}

// WithLogLines bounds the lines Log returns (default 100000; the counters
// are not bounded).
func WithLogLines(n int) Option {
	return func(c *config) error { c.logLines = n; return nil }
}

// Clock is the time source of the model's delays.
type Clock interface {
	Now() time.Time
	Sleep(d time.Duration)
	// AfterFunc runs f in its own goroutine after d; the returned stop
	// function reports whether it stopped f from running.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time        { return time.Now() }
func (realClock) Sleep(d time.Duration) { time.Sleep(d) }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}
