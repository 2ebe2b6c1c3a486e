package region

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// madeFile, in the state directory, lists the regions this daemon created
// that may still exist, so that a restarted daemon knows them as its own
// (origin daemon, no foreign settle window) instead of taking every
// committed region it finds for the kernel's.
const madeFile = "made.json"

// madeRecord identifies one region the daemon created. Within a boot a
// name and root decoder with the same uuid, HPA and size are the same
// region; the inode number is left out because it does not survive the
// simulated kernel's reload (a new number on load).
type madeRecord struct {
	Boot        string `json:"boot"`
	RootDecoder string `json:"root_decoder"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	UUID        string `json:"uuid,omitempty"`
	Resource    uint64 `json:"resource"`
	Size        uint64 `json:"size"`
}

func recordOf(boot string, reg sysfs.Region) madeRecord {
	rec := madeRecord{Boot: boot, RootDecoder: reg.RootDecoder, Name: reg.Name, Type: reg.Type, UUID: reg.UUID, Size: reg.Size}
	if reg.Resource != nil {
		rec.Resource = *reg.Resource
	}
	return rec
}

// madeRegions is the record of what the daemon made. Its records carry
// Config.BootID: records of an earlier boot say nothing about this one's
// regions.
type madeRegions struct {
	path string
	boot string

	mu sync.Mutex // guards recs and known
	// recs are the regions made in this boot and not yet seen gone.
	recs []madeRecord
	// known is false when the file could not be read or the last write
	// failed: a committed region without a record may then be the
	// daemon's, and its origin is unknown rather than kernel.
	known bool
}

// openMade reads the record. A missing file, or one of an earlier boot, is
// an empty record: the daemon made nothing in this boot. An unreadable
// one, or no boot id, makes the origin of committed regions found at
// startup unknown.
func openMade(stateDir, boot string) (*madeRegions, error) {
	m := &madeRegions{path: filepath.Join(stateDir, madeFile), boot: boot, known: boot != ""}
	b, err := os.ReadFile(m.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return m, nil
	case err != nil:
		m.known = false
		return m, fmt.Errorf("made regions: %w", err)
	}
	var recs []madeRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		m.known = false
		return m, fmt.Errorf("made regions %s: %w", m.path, err)
	}
	for _, r := range recs {
		if r.Boot == boot && boot != "" {
			m.recs = append(m.recs, r)
		}
	}
	return m, nil
}

// origin says whether reg, found at startup, is a region the daemon made:
// OriginDaemon if recorded, "" if not, OriginUnknown if the record cannot
// be trusted.
func (m *madeRegions) origin(reg sysfs.Region) Origin {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := recordOf(m.boot, reg)
	for _, r := range m.recs {
		if r == rec {
			return OriginDaemon
		}
	}
	if !m.known {
		return OriginUnknown
	}
	return ""
}

// add records a region the daemon created, keeping only the records live
// says still exist. The file is replaced by a rename but not fsynced: it
// must survive the daemon being killed, which the page cache does; a
// power loss takes the regions with it.
func (m *madeRegions) add(reg sysfs.Region, live func(madeRecord) bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	recs := []madeRecord{recordOf(m.boot, reg)}
	for _, r := range m.recs {
		if r != recs[0] && live(r) {
			recs = append(recs, r)
		}
	}
	b, err := json.Marshal(recs)
	if err == nil {
		tmp := m.path + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, m.path)
		}
	}
	if err != nil {
		m.known = false
		return fmt.Errorf("record region %s as made by the daemon: %w", reg.Name, err)
	}
	m.recs, m.known = recs, true
	return nil
}
