package region

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/renameio/v2"
)

// intent is one journalled operation: written before the first sysfs write
// of a create or delete, advanced at each point a crash must be told apart,
// and removed when the operation has finished or been rolled back.
type intent struct {
	ID          uint64   `json:"id"`
	Op          string   `json:"op"` // create or delete
	RootDecoder string   `json:"root_decoder"`
	Name        string   `json:"name,omitempty"` // the region name claimed or deleted
	Generation  uint64   `json:"generation,omitempty"`
	Type        string   `json:"type,omitempty"`
	UUID        string   `json:"uuid,omitempty"`
	Size        uint64   `json:"size,omitempty"`
	Resource    uint64   `json:"resource,omitempty"`
	Targets     []string `json:"targets,omitempty"`
	// Allocated lists endpoint decoders whose DPA this operation set, with
	// the mode they had before, so a rollback can restore them.
	Allocated []allocation `json:"allocated,omitempty"`
	Phase     string       `json:"phase"`
	Started   time.Time    `json:"started"`
}

type allocation struct {
	Decoder  string `json:"decoder"`
	OldMode  string `json:"old_mode"`
	Position int    `json:"position"`
}

// journalPhases are the phases each op records (create.go, delete.go).
var journalPhases = map[string][]string{
	"create": {"begin", "created", "configured", "allocating", "attached", "committed"},
	"delete": {"begin", "deleting", "written"},
}

// check refuses an intent no run of the daemon wrote: recovery writes the
// names it holds to sysfs, so a corrupt file must stop the start rather
// than reach the kernel.
func (in *intent) check() error {
	phases, ok := journalPhases[in.Op]
	if !ok {
		return fmt.Errorf("unknown op %q", truncate(in.Op))
	}
	if !slices.Contains(phases, in.Phase) {
		return fmt.Errorf("%s: unknown phase %q", in.Op, truncate(in.Phase))
	}
	if err := ValidateDecoderName(in.RootDecoder); err != nil {
		return err
	}
	if in.Name != "" || in.Op == "delete" {
		if err := ValidateRegionName(in.Name); err != nil {
			return err
		}
	}
	for _, t := range in.Targets {
		if t == "" {
			continue
		}
		if err := ValidateDecoderName(t); err != nil {
			return err
		}
	}
	for _, a := range in.Allocated {
		if err := ValidateDecoderName(a.Decoder); err != nil {
			return err
		}
	}
	return nil
}

// journal keeps intents as one JSON file each under <state>/intents, and a
// generation counter that never goes back, across restarts.
type journal struct {
	dir string

	// mu guards the fields below. nextGeneration holds it across the
	// reservation's write, so no number is handed out unreserved.
	mu      sync.Mutex
	nextID  uint64
	gen     uint64 // last generation handed out
	genCap  uint64 // generations up to genCap are reserved on disk
	pending map[uint64]*intent
}

const genReserve = 1024

// maxCounter bounds the intent ids and generations a journal accepts: a
// daemon counting from 1 never reaches it, and counting on from any value
// below it cannot wrap.
const maxCounter = 1 << 62

func openJournal(stateDir string) (*journal, error) {
	dir := filepath.Join(stateDir, "intents")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &journal{dir: stateDir, pending: make(map[uint64]*intent)}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	for _, ent := range entries {
		if !strings.HasSuffix(ent.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, ent.Name()))
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		var in intent
		if err := json.Unmarshal(b, &in); err != nil {
			return nil, fmt.Errorf("journal %s: %w", ent.Name(), err)
		}
		if err := in.check(); err != nil {
			return nil, fmt.Errorf("journal %s: %w", ent.Name(), err)
		}
		if in.ID > maxCounter {
			return nil, fmt.Errorf("journal %s: id %d is beyond any the daemon hands out", ent.Name(), in.ID)
		}
		j.pending[in.ID] = &in
		j.nextID = max(j.nextID, in.ID)
	}
	b, err := os.ReadFile(filepath.Join(stateDir, "generation"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("journal: %w", err)
	default:
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("journal: generation file: %w", err)
		}
		if n > maxCounter {
			// Counting on from here would wrap to generation 0.
			return nil, fmt.Errorf("journal: generation file: %d is beyond any the daemon hands out", n)
		}
		// Generations reserved by the previous run may have been handed
		// out: start above all of them.
		j.gen, j.genCap = n, n
	}
	return j, nil
}

// nextGeneration hands out a generation number that no earlier run of the
// daemon on this state directory has used. Reserving a block at a time
// keeps a disk write off most calls.
func (j *journal) nextGeneration() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.gen++
	if j.gen > j.genCap {
		j.genCap = j.gen + genReserve
		if err := atomicWrite(filepath.Join(j.dir, "generation"), []byte(strconv.FormatUint(j.genCap, 10)+"\n")); err != nil {
			// Without the reservation a restart could reuse numbers; go on
			// with this run's numbers, which stay unique within it.
			j.genCap = j.gen
		}
	}
	return j.gen
}

func (j *journal) path(id uint64) string {
	return filepath.Join(j.dir, "intents", strconv.FormatUint(id, 10)+".json")
}

func (j *journal) write(in *intent) error {
	b, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicWrite(j.path(in.ID), b); err != nil {
		return fmt.Errorf("journal %s %s: %w", in.Op, in.Name, err)
	}
	return nil
}

// begin records a new intent durably before the operation's first write.
func (j *journal) begin(in *intent) error {
	j.mu.Lock()
	j.nextID++
	in.ID = j.nextID
	in.Started = time.Now().UTC()
	j.pending[in.ID] = in
	j.mu.Unlock()
	return j.write(in)
}

// advance records that the operation has reached phase.
func (j *journal) advance(in *intent, phase string) error {
	in.Phase = phase
	return j.write(in)
}

// done removes a finished intent.
func (j *journal) done(in *intent) error {
	j.mu.Lock()
	delete(j.pending, in.ID)
	j.mu.Unlock()
	if err := os.Remove(j.path(in.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	return syncDir(filepath.Dir(j.path(in.ID)))
}

// atomicWrite replaces a file so that a crash leaves the old or the new
// content, never a mix: a temporary file in the same directory (no probe of
// $TMPDIR, which PrivateTmp= hides), fsync, rename, and an fsync of the
// directory so that the rename itself survives a crash.
func atomicWrite(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := renameio.WriteFile(path, data, 0o600, renameio.WithTempDir(dir)); err != nil {
		return err
	}
	return syncDir(dir)
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

// unfinished returns the intents a previous run left, oldest first.
func (j *journal) unfinished() []*intent {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]*intent, 0, len(j.pending))
	for _, in := range j.pending {
		out = append(out, in)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// lookupCreate finds an unfinished create of name under rootDecoder.
func (j *journal) lookupCreate(rootDecoder, name string) *intent {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, in := range j.pending {
		if in.Op == "create" && in.RootDecoder == rootDecoder && in.Name == name {
			return in
		}
	}
	return nil
}
