package journal

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// countingFile counts Sync calls; syncDelay makes each one take time, as
// an fsync to a disk does, so that concurrent commits can pile up behind
// it; failWrites makes the next writes fail.
type countingFile struct {
	File
	syncs      *atomic.Int64
	syncDelay  time.Duration
	failWrites *atomic.Int64
}

func (f *countingFile) Write(p []byte) (int, error) {
	if f.failWrites != nil && f.failWrites.Add(-1) >= 0 {
		return 0, syscall.EIO
	}
	return f.File.Write(p)
}

func (f *countingFile) Sync() error {
	f.syncs.Add(1)
	time.Sleep(f.syncDelay)
	return f.File.Sync()
}

type fileCounter struct {
	syncs, failWrites, failOpens atomic.Int64
	syncDelay                    time.Duration
}

func (c *fileCounter) open(path string) (File, error) {
	if c.failOpens.Add(-1) >= 0 {
		return nil, syscall.EROFS
	}
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, syncs: &c.syncs, syncDelay: c.syncDelay, failWrites: &c.failWrites}, nil
}

func openCounted(t *testing.T, dir string, c *fileCounter) *Journal {
	t.Helper()
	j, err := Open(dir, Options{OpenFile: c.open})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// TestSyncsPerOperation counts fsyncs, not time: an operation's intent is
// the one synchronous write; its later phases and a successful end ride
// on the next sync; a failed end is synced (a restart must not resume it).
//
// Mutation: sync in Advance (commit after append) and "create" goes red;
// drop the commit of a Failed Done and "delete refused" goes red.
func TestSyncsPerOperation(t *testing.T) {
	tests := []struct {
		name  string
		run   func(j *Journal) error
		syncs int64
	}{
		{"create", func(j *Journal) error {
			in := &Intent{Op: OpCreate, RootDecoder: "decoder0.0", Name: "region0"}
			return errors.Join(j.Begin(in),
				j.Advance(in, PhaseCreated), j.Advance(in, PhaseConfigured), j.Advance(in, PhaseAllocating),
				j.Advance(in, PhaseAttached), j.Advance(in, PhaseCommitted), j.Done(in, Finished))
		}, 1},
		{"delete", func(j *Journal) error {
			in := &Intent{Op: OpDelete, RootDecoder: "decoder0.0", Name: "region0"}
			return errors.Join(j.Begin(in), j.Advance(in, PhaseDeleting), j.Advance(in, PhaseWritten), j.Done(in, Finished))
		}, 1},
		{"delete refused", func(j *Journal) error {
			in := &Intent{Op: OpDelete, RootDecoder: "decoder0.0", Name: "region0"}
			return errors.Join(j.Begin(in), j.Advance(in, PhaseDeleting), j.Done(in, Failed))
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c fileCounter
			j := openCounted(t, t.TempDir(), &c)
			before := c.syncs.Load()
			if err := tt.run(j); err != nil {
				t.Fatal(err)
			}
			if got := c.syncs.Load() - before; got != tt.syncs {
				t.Fatalf("%s made %d fsyncs, want %d", tt.name, got, tt.syncs)
			}
		})
	}
}

// TestGroupCommit runs many operations at once, as the writers of many root
// decoders do, each syncing its intent: they must share fsyncs (while one
// sync runs, the intents appended meanwhile wait for the next one, which
// covers them all), and every Begin must still return only after its own
// record was synced.
//
// Mutation: in commitLocked keep j.mu held across f.Sync() (no appends
// while a sync runs, so no sharing) and the fsync count equals the number
// of operations.
func TestGroupCommit(t *testing.T) {
	const ops = 64
	c := fileCounter{syncDelay: 2 * time.Millisecond}
	dir := t.TempDir()
	j := openCounted(t, dir, &c)
	before := c.syncs.Load()
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, ops)
	for i := range ops {
		wg.Go(func() {
			<-start
			in := &Intent{Op: OpDelete, RootDecoder: "decoder" + itoa(i) + ".0", Name: "region" + itoa(i)}
			if err := j.Begin(in); err != nil {
				errs <- err
				return
			}
			errs <- j.Done(in, Finished)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	syncs := c.syncs.Load() - before
	t.Logf("%d concurrent intents, %d fsyncs", ops, syncs)
	if syncs >= ops/2 {
		t.Fatalf("%d concurrent intents took %d fsyncs: not shared", ops, syncs)
	}
	if len(j.Unfinished()) != 0 {
		t.Fatalf("unfinished after all done: %+v", j.Unfinished())
	}
}

// TestBeginIsDurable checks the ordering itself: a Begin never returns
// before a sync that started after its record was appended has finished.
func TestBeginIsDurable(t *testing.T) {
	var c fileCounter
	j := openCounted(t, t.TempDir(), &c)
	for i := range 20 {
		in := &Intent{Op: OpCreate, RootDecoder: "decoder0.0", Name: "region" + itoa(i)}
		if err := j.Begin(in); err != nil {
			t.Fatal(err)
		}
		j.mu.Lock()
		ok := j.synced == j.written
		j.mu.Unlock()
		if !ok {
			t.Fatalf("Begin %d returned with unsynced bytes", i)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func uitoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// TestReopen: unfinished intents, their latest phase, generations and ids
// survive a reopen (which compacts the log).
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, Options{GenerationReserve: 4, BootID: "boot-a"})
	if err != nil {
		t.Fatal(err)
	}
	a := &Intent{Op: OpCreate, RootDecoder: "decoder0.0", Name: "region0", Targets: []string{"decoder2.0"}}
	b := &Intent{Op: OpDelete, RootDecoder: "decoder0.0", Name: "region1", Ino: 42}
	for _, in := range []*Intent{a, b} {
		if err := j.Begin(in); err != nil {
			t.Fatal(err)
		}
	}
	a.Allocated = append(a.Allocated, Allocation{Decoder: "decoder2.0", OldMode: "ram"})
	if err := j.Advance(a, PhaseAllocating); err != nil {
		t.Fatal(err)
	}
	if err := j.Done(b, Finished); err != nil {
		t.Fatal(err)
	}
	gens := map[uint64]bool{}
	for range 10 { // crosses several reservations of 4
		g, err := j.NextGeneration()
		if err != nil {
			t.Fatal(err)
		}
		gens[g] = true
	}
	// No Close: a killed daemon does not close its journal.
	j2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	left := j2.Unfinished()
	want := []*Intent{a}
	if diff := cmp.Diff(want, left, cmpopts.EquateApproxTime(time.Second)); diff != "" {
		t.Fatalf("unfinished after reopen (-want +got):\n%s", diff)
	}
	if left[0].BootID != "boot-a" {
		t.Fatalf("boot id %q, want boot-a", left[0].BootID)
	}
	if _, ok := j2.LookupCreate("decoder0.0", "region0"); !ok {
		t.Fatal("LookupCreate did not find the unfinished create")
	}
	for range 10 {
		g, err := j2.NextGeneration()
		if err != nil {
			t.Fatal(err)
		}
		if gens[g] {
			t.Fatalf("generation %d reused after reopen", g)
		}
	}
	c := &Intent{Op: OpDelete, Name: "region2"}
	if err := j2.Begin(c); err != nil {
		t.Fatal(err)
	}
	if c.ID <= a.ID {
		t.Fatalf("intent id %d not above the surviving %d", c.ID, a.ID)
	}
	// Compacted: the done intent b is no longer in the file.
	raw, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), `"region1"`) {
		t.Fatal("compaction kept a finished intent")
	}
}

// TestCompactsWhileRunning: a daemon that runs for months does not grow
// its log without bound; past CompactAt, Done rewrites it with the live
// intents only, and what it holds reads back.
//
// Mutation: drop the size check's rewrite in Done and the file grows with
// every operation.
func TestCompactsWhileRunning(t *testing.T) {
	const compactAt = 4 << 10
	dir := t.TempDir()
	j, err := Open(dir, Options{CompactAt: compactAt})
	if err != nil {
		t.Fatal(err)
	}
	live := &Intent{Op: OpCreate, RootDecoder: "decoder0.0", Name: "region100"}
	if err := j.Begin(live); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		in := &Intent{Op: OpDelete, RootDecoder: "decoder0.0", Name: "region" + itoa(i)}
		if err := errors.Join(j.Begin(in), j.Advance(in, PhaseDeleting), j.Advance(in, PhaseWritten), j.Done(in, Finished)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 2*compactAt {
		t.Fatalf("log is %d bytes after 200 operations, compaction at %d", st.Size(), compactAt)
	}
	// Still appending to the file on disk after the rewrites.
	if err := j.Advance(live, PhaseConfigured); err != nil {
		t.Fatal(err)
	}
	j2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	left := j2.Unfinished()
	if len(left) != 1 || left[0].Name != "region100" || left[0].Phase != PhaseConfigured {
		t.Fatalf("after compactions: %+v, want region100 configured", left)
	}
}

// writeLog makes a log of three intents and returns its bytes and the
// offsets where each record starts.
func writeLog(t *testing.T, dir string) ([]byte, []int) {
	t.Helper()
	j, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := j.Begin(&Intent{Op: OpDelete, RootDecoder: "decoder0.0", Name: "region" + itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	var offs []int
	for off := headerSize; off < len(b); {
		offs = append(offs, off)
		off += frameHeader + int(binary.LittleEndian.Uint32(b[off:]))
	}
	return b, offs
}

// TestTornAndCorruptLogs: only the last record may be torn (dropped, and
// the journal starts with the others); damage anywhere else is refused and
// the file is left as it is.
func TestTornAndCorruptLogs(t *testing.T) {
	tests := []struct {
		name    string
		mangle  func(b []byte, offs []int) []byte
		live    int  // intents left when it opens
		corrupt bool // refused with *CorruptError
	}{
		{"intact", func(b []byte, _ []int) []byte { return b }, 3, false},
		{"last record cut in its payload", func(b []byte, offs []int) []byte { return b[:len(b)-5] }, 2, false},
		{"last record cut in its header", func(b []byte, offs []int) []byte { return b[:offs[len(offs)-1]+3] }, 2, false},
		{"last record's checksum wrong", func(b []byte, offs []int) []byte { b[len(b)-2] ^= 0xff; return b }, 2, false},
		{"zeros after the last record", func(b []byte, _ []int) []byte { return append(b, make([]byte, 300)...) }, 3, false},
		{"middle record's payload flipped", func(b []byte, offs []int) []byte { b[offs[1]+frameHeader+3] ^= 0x20; return b }, 0, true},
		{"middle record's length wrong", func(b []byte, offs []int) []byte {
			binary.LittleEndian.PutUint32(b[offs[1]:], 7)
			return b
		}, 0, true},
		{"header checksum wrong", func(b []byte, _ []int) []byte { b[13] ^= 1; return b }, 0, true},
		{"not a journal", func(b []byte, _ []int) []byte { return []byte("{\"id\":1}\n") }, 0, true},
		{"empty file", func(b []byte, _ []int) []byte { return nil }, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			b, offs := writeLog(t, dir)
			if len(offs) != 4 { // reservation + 3 intents
				t.Fatalf("log has %d records, want 4", len(offs))
			}
			mangled := tt.mangle(append([]byte(nil), b...), offs)
			path := filepath.Join(dir, FileName)
			if err := os.WriteFile(path, mangled, 0o600); err != nil {
				t.Fatal(err)
			}
			j, err := Open(dir, Options{})
			if tt.corrupt {
				var ce *CorruptError
				if !errors.As(err, &ce) {
					t.Fatalf("Open = %v, want a CorruptError", err)
				}
				if !strings.Contains(err.Error(), path) {
					t.Fatalf("error %q does not name the file", err)
				}
				after, _ := os.ReadFile(path)
				if string(after) != string(mangled) {
					t.Fatal("a refused log was changed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			if got := len(j.Unfinished()); got != tt.live {
				t.Fatalf("%d intents survive, want %d", got, tt.live)
			}
			if torn := j.Report().TornBytes; (torn != 0) != (tt.name != "intact") {
				t.Fatalf("TornBytes = %d for a file of %d bytes (intact %d)", torn, len(mangled), len(b))
			}
			// The torn tail is gone from the compacted file: a new record
			// lands after good ones and reads back.
			if err := j.Begin(&Intent{Op: OpCreate, RootDecoder: "decoder0.0", Name: "region9"}); err != nil {
				t.Fatal(err)
			}
			j.Close()
			j2, err := Open(dir, Options{})
			if err != nil {
				t.Fatalf("reopen after a torn tail: %v", err)
			}
			defer j2.Close()
			if got := len(j2.Unfinished()); got != tt.live+1 {
				t.Fatalf("after reopen %d intents, want %d", got, tt.live+1)
			}
		})
	}
}

// TestUnknownVersionRefused: a log of another format version is never
// guessed at: Open refuses, names the file and the version, and leaves the
// file untouched.
func TestUnknownVersionRefused(t *testing.T) {
	for _, v := range []uint32{0, 1, Version + 1, 0xffffffff} {
		dir := t.TempDir()
		b, _ := writeLog(t, dir)
		binary.LittleEndian.PutUint32(b[8:], v)
		// A well-formed header of that version: its checksum matches.
		binary.LittleEndian.PutUint32(b[12:], crc32c(b[:12]))
		path := filepath.Join(dir, FileName)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(dir, Options{})
		var ve *VersionError
		if !errors.As(err, &ve) || ve.Version != v {
			t.Fatalf("version %d: Open = %v, want a VersionError", v, err)
		}
		for _, want := range []string{path, "version " + uitoa(v), "refusing to start"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("version %d: error %q does not say %q", v, err, want)
			}
		}
		after, _ := os.ReadFile(path)
		if string(after) != string(b) {
			t.Fatalf("version %d: the refused log was changed", v)
		}
	}
}

// TestFailedWriteSurfacesAndRepairs: a write that fails makes the journal
// fail (ErrUnwritable, keeping the errno) and refuse new intents while it
// cannot rewrite the log; the record that failed is not forgotten: the
// rewrite, once possible, holds it.
func TestFailedWriteSurfacesAndRepairs(t *testing.T) {
	var c fileCounter
	dir := t.TempDir()
	j := openCounted(t, dir, &c)
	in := &Intent{Op: OpDelete, RootDecoder: "decoder0.0", Name: "region0"}
	if err := j.Begin(in); err != nil {
		t.Fatal(err)
	}
	c.failWrites.Store(1)
	c.failOpens.Store(1) // the first repair cannot reopen the log
	err := j.Done(in, Failed)
	if !errors.Is(err, ErrUnwritable) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Done with a failing write = %v, want ErrUnwritable wrapping EIO", err)
	}
	if err := j.Begin(&Intent{Op: OpDelete, RootDecoder: "decoder1.0", Name: "region1"}); !errors.Is(err, ErrUnwritable) {
		t.Fatalf("Begin on a failed journal whose repair fails = %v, want ErrUnwritable", err)
	}
	// Now the repair can reopen: Sync rewrites the log from memory.
	if err := j.Sync(); err != nil {
		t.Fatalf("repair: %v", err)
	}
	j2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if left := j2.Unfinished(); len(left) != 0 {
		t.Fatalf("the failed delete's end was lost: %+v survive", left)
	}
}

// TestVersion1Converted: a state directory of the old format (a JSON file
// per intent, phases as strings) is converted: the intents survive with
// typed phases, the generation reservation is kept, the old files are
// removed once the new log is durable.
func TestVersion1Converted(t *testing.T) {
	dir := copyDir(t, "testdata/v1")
	j, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	left := j.Unfinished()
	if len(left) != 2 || left[0].ID != 7 || left[0].Op != OpCreate || left[0].Phase != PhaseAllocating ||
		len(left[0].Allocated) != 1 || left[0].Allocated[0].OldMode != "ram" ||
		left[1].ID != 9 || left[1].Op != OpDelete || left[1].Phase != PhaseDeleting || left[1].Resource != 17448304640 {
		t.Fatalf("converted intents = %+v", left)
	}
	if rep := j.Report(); !rep.Legacy || rep.Converted != 2 {
		t.Fatalf("report %+v", rep)
	}
	if g, _ := j.NextGeneration(); g <= 2048 {
		t.Fatalf("generation %d not above the version 1 reservation 2048", g)
	}
	for _, old := range []string{"intents", "generation"} {
		if _, err := os.Stat(filepath.Join(dir, old)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("version 1 %s not removed: %v", old, err)
		}
	}
	in := &Intent{Op: OpCreate, RootDecoder: "decoder0.0"}
	if err := j.Begin(in); err != nil || in.ID <= 9 {
		t.Fatalf("new intent id %d (err %v), want above 9", in.ID, err)
	}
	j.Close()
}

// TestVersion1UnknownPhaseRefused: a version 1 intent whose phase this
// build does not know is refused, naming the file, and nothing is removed.
func TestVersion1UnknownPhaseRefused(t *testing.T) {
	dir := copyDir(t, "testdata/v1-unknown-phase")
	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "intents", "9.json")) || !strings.Contains(err.Error(), "half-deleted") {
		t.Fatalf("Open = %v, want a refusal naming intents/9.json and the phase", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "intents", "9.json")); err != nil {
		t.Fatalf("the refused version 1 intent was touched: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a log was written for a refused conversion: %v", err)
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
