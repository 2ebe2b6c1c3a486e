package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/google/renameio/v2"
)

// ErrUnwritable is wrapped by every error of a journal that could not write
// or sync its log. Until a rewrite of the whole log succeeds the journal
// refuses new intents: nothing may reach the kernel without its intent on
// disk.
var ErrUnwritable = errors.New("journal cannot be written")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("journal closed")

// File is the log opened for appending. *os.File implements it; tests wrap
// it to count Sync calls or to make writes fail.
type File interface {
	Write(p []byte) (int, error)
	Sync() error
	Close() error
}

// Options tune Open.
type Options struct {
	// OpenFile opens the log for appending; nil opens it with
	// O_WRONLY|O_APPEND.
	OpenFile func(path string) (File, error)
	// BootID is stamped on every new intent (Intent.BootID).
	BootID string
	// CompactAt is the log size past which Done rewrites it compacted
	// (one more fsync, once per that many bytes); 0 means 1 MiB, about
	// a thousand operations.
	CompactAt int64
	// GenerationReserve is how many generation numbers one durable record
	// reserves; 0 means 1024.
	GenerationReserve uint64
}

// Journal is the intent log of one state directory. It is safe for
// concurrent use; records of concurrent operations share syncs (group
// commit).
type Journal struct {
	path     string
	dir      string
	openFile func(string) (File, error)
	reserve  uint64
	bootID   string
	// compactAt bounds the log: past it Done rewrites it compacted.
	compactAt uint64
	report    OpenReport

	mu   sync.Mutex
	cond *sync.Cond // broadcast when a sync ends
	f    File
	// written and synced count bytes appended since Open and bytes known
	// durable; a commit waits until synced reaches its record's end.
	written, synced uint64
	// rewritten is written as of the last rewrite (the compacted base).
	rewritten uint64
	syncing   bool
	failed    error // sticky until a rewrite succeeds
	closed    bool

	nextID      uint64
	gen, genCap uint64
	pending     map[uint64]*Intent
}

// OpenReport says what Open found.
type OpenReport struct {
	// TornBytes were dropped from the end of the log: the last append of a
	// process that died while writing it.
	TornBytes int64
	// Converted is the number of version 1 intent files converted.
	Converted int
	// Legacy is true when a version 1 state directory was converted.
	Legacy bool
}

// Open reads the log of stateDir (converting a version 1 directory),
// rewrites it compacted (live intents and the generation reservation only)
// and opens it for appending. A log of another version, or damaged other
// than in its last record, is refused with a *VersionError or
// *CorruptError and left as it is.
func Open(stateDir string, opts Options) (*Journal, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{
		path:      filepath.Join(stateDir, FileName),
		dir:       stateDir,
		openFile:  opts.OpenFile,
		reserve:   opts.GenerationReserve,
		bootID:    opts.BootID,
		compactAt: uint64(opts.CompactAt),
		pending:   make(map[uint64]*Intent),
	}
	j.cond = sync.NewCond(&j.mu)
	if j.openFile == nil {
		j.openFile = openAppend
	}
	if j.reserve == 0 {
		j.reserve = 1024
	}
	if j.compactAt == 0 {
		j.compactAt = 1 << 20
	}
	b, err := os.ReadFile(j.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("journal: %w", err)
	default:
		d, err := decode(j.path, b)
		if err != nil {
			return nil, err
		}
		j.report.TornBytes = d.torn
		for _, r := range d.records {
			j.apply(&r)
		}
	}
	leg, err := readLegacy(stateDir)
	if err != nil {
		return nil, err
	}
	if leg != nil {
		if err := j.merge(leg); err != nil {
			return nil, err
		}
		j.report.Legacy, j.report.Converted = true, len(leg.intents)
	}
	// Numbers up to the last reservation may have been handed out by the
	// previous run: start above all of them.
	j.gen = j.genCap
	j.mu.Lock()
	err = j.rewriteLocked()
	j.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if leg != nil {
		// Only once the converted log is durable.
		if err := leg.remove(); err != nil {
			j.f.Close()
			return nil, err
		}
	}
	return j, nil
}

// Report says what Open found.
func (j *Journal) Report() OpenReport { return j.report }

// Path is the log's file.
func (j *Journal) Path() string { return j.path }

func openAppend(path string) (File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
}

func (j *Journal) apply(r *record) {
	switch r.Kind {
	case kindIntent:
		j.pending[r.Intent.ID] = r.Intent
		j.nextID = max(j.nextID, r.Intent.ID)
	case kindDone:
		delete(j.pending, r.ID)
		j.nextID = max(j.nextID, r.ID)
	case kindReserve:
		j.genCap = max(j.genCap, r.Reserve)
	}
}

// snapshot is the compacted log: header, reservation, live intents.
func (j *Journal) snapshot() ([]byte, error) {
	buf := encodeHeader()
	var err error
	if buf, err = encodeFrame(buf, &record{Kind: kindReserve, Reserve: j.genCap}); err != nil {
		return nil, err
	}
	for _, in := range j.sortedLocked() {
		if buf, err = encodeFrame(buf, &record{Kind: kindIntent, Intent: in}); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// rewriteLocked replaces the log with its compacted state atomically (a
// temporary file in the same directory, fsync, rename, fsync of the
// directory) and reopens it for appending. It is the startup compaction
// and the repair after a failed write or sync: after a failed fsync the
// kernel may have dropped the dirty pages, so the file is not trusted and
// is rewritten whole.
func (j *Journal) rewriteLocked() error {
	for j.syncing {
		j.cond.Wait()
	}
	b, err := j.snapshot()
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	if err := renameio.WriteFile(j.path, b, 0o600, renameio.WithTempDir(j.dir)); err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	if err := syncDir(j.dir); err != nil {
		return err
	}
	f, err := j.openFile(j.path)
	if err != nil {
		// The file on disk may be the new one while j.f still appends to
		// the old: fail, so that nothing is appended before a rewrite
		// succeeds.
		return j.failLocked(err)
	}
	if j.f != nil {
		_ = j.f.Close() // the old file's content is replaced; its errors no longer matter
	}
	j.f = f
	j.synced = j.written
	j.rewritten = j.written
	j.failed = nil
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: sync %s: %w", dir, err)
	}
	return nil
}

func (j *Journal) failLocked(err error) error {
	j.failed = fmt.Errorf("journal %s: %w: %w", j.path, ErrUnwritable, err)
	return j.failed
}

// appendLocked writes one record at the end of the log (not synced) and
// returns the position a commit of it must reach. The in-memory state
// already holds the record's effect, so after a failure the repair (a
// rewrite of that state) includes it.
func (j *Journal) appendLocked(r *record) (uint64, error) {
	if j.closed {
		return 0, ErrClosed
	}
	if j.failed != nil {
		if err := j.rewriteLocked(); err != nil {
			return 0, fmt.Errorf("%w (repair: %v)", j.failed, err)
		}
		return j.written, nil
	}
	buf, err := encodeFrame(nil, r)
	if err != nil {
		return 0, fmt.Errorf("journal %s: %w", j.path, err)
	}
	n, err := j.f.Write(buf)
	j.written += uint64(n)
	if err != nil {
		return 0, j.failLocked(err)
	}
	return j.written, nil
}

// commitLocked returns once everything up to pos is durable. One caller at
// a time syncs; records appended by others while it does wait for the next
// sync, which then covers all of them (group commit).
func (j *Journal) commitLocked(pos uint64) error {
	for {
		if j.failed != nil {
			return j.failed
		}
		if j.synced >= pos {
			return nil
		}
		if j.syncing {
			j.cond.Wait()
			continue
		}
		j.syncing = true
		upto, f := j.written, j.f
		j.mu.Unlock()
		err := f.Sync()
		j.mu.Lock()
		j.syncing = false
		if err != nil {
			j.failLocked(err)
		} else {
			j.synced = max(j.synced, upto)
		}
		j.cond.Broadcast()
	}
}

// Begin records a new intent durably: it returns once the record is on
// disk, so the operation's first kernel write may follow. It sets in.ID,
// in.Started and, if unset, in.Phase.
func (j *Journal) Begin(in *Intent) error {
	if !in.Op.valid() {
		return fmt.Errorf("journal: begin: unknown operation %d", in.Op)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	j.nextID++
	in.ID = j.nextID
	in.Started = time.Now().UTC()
	in.BootID = j.bootID
	if in.Phase == 0 {
		in.Phase = PhaseBegin
	}
	j.pending[in.ID] = in.clone()
	pos, err := j.appendLocked(&record{Kind: kindIntent, Intent: j.pending[in.ID]})
	if err == nil {
		err = j.commitLocked(pos)
	}
	if err != nil {
		// The operation does not start; the next rewrite leaves it out.
		delete(j.pending, in.ID)
		return err
	}
	return nil
}

// Advance records the intent as it is now, at phase. The record is written
// to the log before Advance returns (so it survives the daemon's death) and
// becomes durable with the next sync of any operation.
func (j *Journal) Advance(in *Intent, phase Phase) error {
	if !phase.valid() {
		return fmt.Errorf("journal: advance %d: unknown phase %d", in.ID, phase)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.pending[in.ID]; !ok {
		return fmt.Errorf("journal: advance: no intent %d", in.ID)
	}
	in.Phase = phase
	j.pending[in.ID] = in.clone()
	_, err := j.appendLocked(&record{Kind: kindIntent, Intent: j.pending[in.ID]})
	return err
}

// Done ends an intent. A Finished record rides on the next sync: if a
// crash loses it, recovery finds the operation's work complete or undone in
// sysfs. A Failed record is made durable before Done returns: the caller is
// about to be told the operation failed, and a restart must not resume it.
func (j *Journal) Done(in *Intent, outcome Outcome) error {
	if outcome != Finished && outcome != Failed {
		return fmt.Errorf("journal: done %d: unknown outcome %d", in.ID, outcome)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.pending[in.ID]; !ok {
		return nil
	}
	delete(j.pending, in.ID)
	pos, err := j.appendLocked(&record{Kind: kindDone, ID: in.ID, Outcome: outcome})
	if err == nil && outcome == Failed {
		err = j.commitLocked(pos)
	}
	if err == nil && j.written-j.rewritten > j.compactAt {
		// Bounded on a daemon that runs for months, not only at startup.
		if cerr := j.rewriteLocked(); cerr != nil {
			err = fmt.Errorf("compacting: %w", cerr)
		}
	}
	return err
}

// Sync makes every record appended so far durable.
func (j *Journal) Sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failed != nil {
		if err := j.rewriteLocked(); err != nil {
			return fmt.Errorf("%w (repair: %v)", j.failed, err)
		}
	}
	return j.commitLocked(j.written)
}

// Close makes what was appended durable (repairing a failed log if it can)
// and closes the file.
func (j *Journal) Close() error {
	err := j.Sync()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return err
	}
	j.closed = true
	return errors.Join(err, j.f.Close())
}

// NextGeneration hands out a generation number that no earlier run on this
// state directory has used. A durable record reserves a block at a time,
// so most calls write nothing. If the reservation cannot be written the
// number is still unique within this run, and the error says why it may
// not be across a restart.
func (j *Journal) NextGeneration() (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.gen++
	if j.gen <= j.genCap {
		return j.gen, nil
	}
	j.genCap = j.gen + j.reserve
	pos, err := j.appendLocked(&record{Kind: kindReserve, Reserve: j.genCap})
	if err == nil {
		err = j.commitLocked(pos)
	}
	if err != nil {
		j.genCap = j.gen
		return j.gen, fmt.Errorf("reserving generations: %w", err)
	}
	return j.gen, nil
}

// Unfinished returns copies of the intents not yet done, oldest first.
func (j *Journal) Unfinished() []*Intent {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := j.sortedLocked()
	for i, in := range out {
		out[i] = in.clone()
	}
	return out
}

func (j *Journal) sortedLocked() []*Intent {
	out := make([]*Intent, 0, len(j.pending))
	for _, in := range j.pending {
		out = append(out, in)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// LookupCreate finds an unfinished create of name under rootDecoder.
func (j *Journal) LookupCreate(rootDecoder, name string) (Intent, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, in := range j.pending {
		if in.Op == OpCreate && in.RootDecoder == rootDecoder && in.Name == name {
			return *in.clone(), true
		}
	}
	return Intent{}, false
}
