package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Version 1 of the state directory (cxlregiond before this package): one
// JSON file per intent under intents/, rewritten at each phase, with the op
// and phase as strings, and the generation reservation in a file named
// generation. Open converts it: each file is read strictly (an op or phase
// this build does not know is refused with the file's name, never
// guessed), the result is written as the new log, and only then are the old
// files removed. A crash between the two leaves both; the next Open merges
// them again (same ids, same content) and finishes the removal.

const (
	legacyIntents    = "intents"
	legacyGeneration = "generation"
)

type legacyIntent struct {
	ID          uint64             `json:"id"`
	Op          string             `json:"op"`
	RootDecoder string             `json:"root_decoder"`
	Name        string             `json:"name,omitempty"`
	Generation  uint64             `json:"generation,omitempty"`
	Type        string             `json:"type,omitempty"`
	UUID        string             `json:"uuid,omitempty"`
	Size        uint64             `json:"size,omitempty"`
	Resource    uint64             `json:"resource,omitempty"`
	Targets     []string           `json:"targets,omitempty"`
	Allocated   []legacyAllocation `json:"allocated,omitempty"`
	Phase       string             `json:"phase"`
	Started     time.Time          `json:"started"`
}

type legacyAllocation struct {
	Decoder  string `json:"decoder"`
	OldMode  string `json:"old_mode"`
	Position int    `json:"position"`
}

type legacyState struct {
	dir     string
	files   []string // intent files to remove after conversion
	genFile bool
	intents []*Intent
	genCap  uint64
}

// readLegacy returns nil when stateDir holds no version 1 files.
func readLegacy(stateDir string) (*legacyState, error) {
	st := &legacyState{dir: stateDir}
	found := false
	idir := filepath.Join(stateDir, legacyIntents)
	entries, err := os.ReadDir(idir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("journal: version 1 intents: %w", err)
	default:
		found = true
		for _, ent := range entries {
			path := filepath.Join(idir, ent.Name())
			if !strings.HasSuffix(ent.Name(), ".json") {
				// renameio's temporary files of an interrupted rewrite.
				st.files = append(st.files, path)
				continue
			}
			in, err := readLegacyIntent(path)
			if err != nil {
				return nil, err
			}
			st.files = append(st.files, path)
			st.intents = append(st.intents, in)
		}
	}
	gpath := filepath.Join(stateDir, legacyGeneration)
	b, err := os.ReadFile(gpath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("journal: %w", err)
	default:
		found, st.genFile = true, true
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("journal: version 1 generation file %s: %w", gpath, err)
		}
		st.genCap = n
	}
	if !found {
		return nil, nil
	}
	return st, nil
}

var legacyOps = map[string]Op{"create": OpCreate, "delete": OpDelete}

var legacyPhases = map[string]Phase{
	"begin": PhaseBegin, "created": PhaseCreated, "configured": PhaseConfigured,
	"allocating": PhaseAllocating, "attached": PhaseAttached, "committed": PhaseCommitted,
	"deleting": PhaseDeleting, "written": PhaseWritten,
}

func readLegacyIntent(path string) (*Intent, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("journal: version 1 intent: %w", err)
	}
	var l legacyIntent
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("journal: version 1 intent %s: %w: refusing to start", path, err)
	}
	op, ok := legacyOps[l.Op]
	if !ok {
		return nil, fmt.Errorf("journal: version 1 intent %s: unknown op %q: refusing to start", path, l.Op)
	}
	phase, ok := legacyPhases[l.Phase]
	if !ok {
		return nil, fmt.Errorf("journal: version 1 intent %s: unknown phase %q: refusing to start", path, l.Phase)
	}
	if l.ID == 0 {
		return nil, fmt.Errorf("journal: version 1 intent %s: no id: refusing to start", path)
	}
	in := &Intent{
		ID: l.ID, Op: op, Phase: phase, RootDecoder: l.RootDecoder, Name: l.Name,
		Generation: l.Generation, Type: l.Type, UUID: l.UUID, Size: l.Size,
		Resource: l.Resource, Targets: l.Targets, Started: l.Started,
	}
	for _, a := range l.Allocated {
		in.Allocated = append(in.Allocated, Allocation(a))
	}
	return in, nil
}

// merge adds the version 1 state. An id already in the log with other
// content is refused: the two cannot both be true.
func (j *Journal) merge(l *legacyState) error {
	for _, in := range l.intents {
		if have, ok := j.pending[in.ID]; ok && !sameIntent(have, in) {
			return fmt.Errorf("journal: version 1 intent %d in %s differs from the one in %s: refusing to start",
				in.ID, filepath.Join(l.dir, legacyIntents), j.path)
		}
		j.pending[in.ID] = in
		j.nextID = max(j.nextID, in.ID)
	}
	j.genCap = max(j.genCap, l.genCap)
	return nil
}

func sameIntent(a, b *Intent) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// remove deletes the converted version 1 files.
func (l *legacyState) remove() error {
	for _, p := range l.files {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("journal: removing converted %s: %w", p, err)
		}
	}
	if err := os.Remove(filepath.Join(l.dir, legacyIntents)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: removing converted %s: %w", legacyIntents, err)
	}
	if l.genFile {
		if err := os.Remove(filepath.Join(l.dir, legacyGeneration)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("journal: removing converted %s: %w", legacyGeneration, err)
		}
	}
	return syncDir(l.dir)
}
