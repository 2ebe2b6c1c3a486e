package guard

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Writers is the guard's view of the per-root-decoder writers of
// internal/lock; LockWriters adapts a *lock.Registry.
type Writers interface {
	// Acquire takes rootDecoder's writer, waiting in the same FIFO as the
	// daemon's own operations, and returns the function that gives it back.
	// A frozen writer's error wraps ErrWriterFrozen.
	Acquire(ctx context.Context, rootDecoder string) (release func(), err error)
	// TryAcquire takes rootDecoder's writer only if nobody holds or waits
	// for it and its lock file's flock is free, without waiting; ok is
	// false otherwise (busy, frozen, flocked by another process, or an
	// error Acquire would report).
	TryAcquire(rootDecoder string) (release func(), ok bool)
	// LockPath is the file whose flock(2) is rootDecoder's writer; a
	// process tree holding it (`cxlregionctl lock`) needs no more.
	LockPath(rootDecoder string) (string, error)
}

// Config configures a Guard. Writers is required; the rest has defaults.
type Config struct {
	Writers Writers

	// SysfsRoot is where sysfs is mounted; "/sys" if empty. It is used
	// only when Targets is nil.
	SysfsRoot string
	// Targets lists the files to mark for the current root decoders; the
	// default is SysfsTargets(SysfsRoot). Tests give ordinary files.
	Targets func(rootDecoders []string) []Target
	// MemoryTargets lists the memory block state files of the regions'
	// memory (MemoryBlockTargets), read on every Update; nil: none.
	MemoryTargets func() []Target

	// Settled blocks until no region of rootDecoder is still being set up
	// by the kernel, or ctx ends; an open of delete_region waits for it,
	// an open of an unbind file (Target.Teardown) for every root decoder
	// (the engine's (*region.Engine).WaitRootSettled). Nil: no wait.
	Settled func(ctx context.Context, rootDecoder string) error

	// RefuseDelete, when set, is asked once an open of rootDecoder's
	// delete_region holds the writer and the regions have settled; an
	// error refuses the open with EPERM. The daemon sets it with
	// --guard-refuse-online-memory to stop raw deletes of a region whose
	// memory is online as System RAM, which serialization alone lets
	// through (fanotify shows the open, not the value written). Nil: no
	// check.
	RefuseDelete func(rootDecoder string) error

	// Observer is told the outcome of every guarded open: kind is
	// Kind.String(), result one of ResultAllowed, ResultWaited,
	// ResultPassed, ResultRefused. It must be quick (metrics).
	Observer func(kind, result string)

	// HoldWarn is how long another process may keep a guarded file open
	// before it is logged with pid and command name; 30 s if zero.
	HoldWarn time.Duration
	// QueueTimeout bounds how long an open waits for the writers (and, for
	// delete_region, for the regions to settle) before it is refused with
	// EPERM; 60 s if zero.
	QueueTimeout time.Duration
	// CheckInterval is how often holders are looked at: past HoldWarn,
	// or no longer holding the file at all (an open that failed after it
	// was allowed sends no close event); 1 s if zero.
	CheckInterval time.Duration

	Logger *slog.Logger // default discards
}

// Results reported to Config.Observer.
const (
	// ResultAllowed: the writers were free; the open went through at once.
	ResultAllowed = "allowed"
	// ResultWaited: the open was held until the writers were free.
	ResultWaited = "waited"
	// ResultPassed: the opener already held the writers (a
	// `cxlregionctl lock` process tree, or a process tree holding a
	// guarded file already).
	ResultPassed = "passed"
	// ResultRefused: the open failed with EPERM: the writers stayed busy
	// past QueueTimeout, the writer is frozen, or the regions did not
	// settle.
	ResultRefused = "refused"
)

// waitedAfter separates ResultAllowed from ResultWaited: how long taking
// the writers (and waiting for settle) took. Taking a free writer costs
// microseconds; anything slower had to wait for somebody. It is a metric
// label only; nothing depends on it.
const waitedAfter = time.Millisecond

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.Writers == nil {
		return out, errors.New("guard: Config.Writers is nil")
	}
	if out.SysfsRoot == "" {
		out.SysfsRoot = "/sys"
	}
	if out.Targets == nil {
		out.Targets = SysfsTargets(out.SysfsRoot)
	}
	if out.Observer == nil {
		out.Observer = func(string, string) {}
	}
	if out.HoldWarn <= 0 {
		out.HoldWarn = 30 * time.Second
	}
	if out.QueueTimeout <= 0 {
		out.QueueTimeout = 60 * time.Second
	}
	if out.CheckInterval <= 0 {
		out.CheckInterval = time.Second
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out, nil
}
