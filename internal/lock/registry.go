// Package lock gives each CXL root decoder a single writer: a strict FIFO
// turn inside the daemon plus an exclusive flock(2) on a file named after
// the root decoder, so that cooperating tools (`cxlregionctl lock`) are
// serialized with the daemon too.
//
// The kernel's delete_region races (6.0..7.0) need two overlapping writes
// under one root decoder; with every write going through that root
// decoder's Writer they cannot overlap. Root decoders are independent in
// the kernel, so their writers run in parallel.
package lock

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cxlregion/cxlregiond/internal/devname"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// Option configures a Registry.
type Option func(*Registry)

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(r *Registry) {
		if l != nil {
			r.log = l
		}
	}
}

// WithWriteObserver registers a function called after every Tx.Write with the
// attribute, the write's duration and its error (nil on success). It runs on
// the writer's turn, so it must be quick; metrics use it.
func WithWriteObserver(f func(attr string, d time.Duration, err error)) Option {
	return func(r *Registry) { r.observe = f }
}

// Registry hands out the one Writer of each root decoder.
type Registry struct {
	fs      *sysfs.FS
	dir     string
	log     *slog.Logger
	observe func(attr string, d time.Duration, err error)

	mu      sync.Mutex // guards writers; the fields above are fixed by NewRegistry
	writers map[string]*Writer

	// queueObserver is ObserveQueues' function, nil until it is called.
	queueObserver atomic.Pointer[func(rootDecoder string)]
}

// ObserveQueues registers f to be called each time a writer's QueueDepth
// changes: a request takes the turn or starts waiting for it, hands it on
// or gives up waiting. Freeze, which fails every waiter, does not call it:
// whoever freezes reports that (the engine, as RootDecoderChanged). f runs
// on the goroutine that made the change, with no lock of this package
// held, so it may read the writer; it must be quick, and must not wait for
// anything held around a call of Do, Acquire or Release. A later call
// replaces f; nil removes it. The engine registers itself, so that a
// queue depth reaches its readers as an event rather than by polling.
func (r *Registry) ObserveQueues(f func(rootDecoder string)) {
	if f == nil {
		r.queueObserver.Store(nil)
		return
	}
	r.queueObserver.Store(&f)
}

// LockDirMode is the lock directory's mode, the one tmpfiles.d gives
// /run/cxlregiond/lock: readable by all, so an unprivileged tool can see
// which lock files exist; only root takes them.
const LockDirMode = 0o755

// makeLockDir creates dir with LockDirMode whatever the umask (the unit's
// UMask=0077 would make it 0700, unlike the directory tmpfiles.d makes).
// An existing directory is left as it is.
func makeLockDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, LockDirMode); err != nil {
		return err
	}
	return os.Chmod(dir, LockDirMode)
}

// NewRegistry returns a registry whose writers write through fs and keep
// their lock files (<rootdecoder>.lock) in dir, which is created (0755) if
// missing.
func NewRegistry(fs *sysfs.FS, dir string, opts ...Option) (*Registry, error) {
	if fs == nil {
		return nil, fmt.Errorf("lock registry: nil sysfs")
	}
	if dir == "" {
		return nil, fmt.Errorf("lock registry: empty lock directory")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lock registry: %w", err)
	}
	if err := makeLockDir(dir); err != nil {
		return nil, fmt.Errorf("lock registry: %w", err)
	}
	r := &Registry{
		fs:      fs,
		dir:     dir,
		log:     slog.New(slog.DiscardHandler),
		writers: make(map[string]*Writer),
	}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// Dir is the absolute path of the lock directory: what cxlregionctl lock
// must use to serialize with the writers.
func (r *Registry) Dir() string { return r.dir }

// Writer returns the root decoder's writer, creating it on first use.
func (r *Registry) Writer(rootDecoder string) (*Writer, error) {
	p, err := LockPath(r.dir, rootDecoder)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if w, ok := r.writers[rootDecoder]; ok {
		return w, nil
	}
	w := newWriter(r, rootDecoder, p)
	r.writers[rootDecoder] = w
	return w, nil
}

// Writers returns every writer created so far, sorted by name.
func (r *Registry) Writers() []*Writer {
	r.mu.Lock()
	ws := make([]*Writer, 0, len(r.writers))
	for _, w := range r.writers {
		ws = append(ws, w)
	}
	r.mu.Unlock()
	sort.Slice(ws, func(i, j int) bool { return ws[i].name < ws[j].name })
	return ws
}

// LockPath is the lock file of rootDecoder in dir. It refuses anything that is
// not a decoder name as the kernel spells it, so the result never leaves dir
// and one root decoder has one lock file (decoder00.0 is refused, not a
// second lock for decoder0.0).
func LockPath(dir, rootDecoder string) (string, error) {
	if !devname.IsDecoder(rootDecoder) {
		return "", fmt.Errorf("lock: %q is not a root decoder name (want decoderX.Y)", rootDecoder)
	}
	return filepath.Join(dir, rootDecoder+".lock"), nil
}
