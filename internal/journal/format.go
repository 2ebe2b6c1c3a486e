package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Version is the on-disk format this build reads and writes. A log with
// any other version is refused, never guessed at. Version 1 was the
// per-intent JSON files under intents/ (see legacy.go); it is converted.
const Version = 2

// FileName is the log's name inside the state directory.
const FileName = "journal"

// magic opens every log file; the version follows it.
var magic = [8]byte{'C', 'X', 'L', 'R', 'J', 'N', 'L', 0}

// headerSize is magic, version (uint32) and the header's CRC32C (uint32).
const headerSize = 16

// frameHeader is a record's length (uint32) and CRC32C of its payload
// (uint32), both little endian, before the payload.
const frameHeader = 8

// maxPayload bounds one record; anything longer is corruption (an intent
// is a few hundred bytes).
const maxPayload = 64 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Op is the kind of a journalled operation.
type Op uint8

const (
	OpCreate Op = iota + 1
	OpDelete
)

func (o Op) String() string {
	switch o {
	case OpCreate:
		return "create"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

func (o Op) valid() bool { return o == OpCreate || o == OpDelete }

// Phase is how far an operation got. Only the first record of an operation
// (PhaseBegin) is made durable before its first kernel write; later phases
// are written to the file before the kernel write they precede and become
// durable with the next sync (see the package doc for why that is safe).
type Phase uint8

const (
	// PhaseBegin: create: before the create_region handshake (Name is the
	// offered name); delete: before the unbind or delete_region write.
	PhaseBegin Phase = iota + 1
	// PhaseCreated: the kernel gave the name to this create.
	PhaseCreated
	// PhaseConfigured: granularity, ways, uuid and size are written.
	PhaseConfigured
	// PhaseAllocating: an endpoint decoder's DPA is about to be set;
	// Allocated lists it with the mode it had.
	PhaseAllocating
	// PhaseAttached: every target is attached.
	PhaseAttached
	// PhaseCommitted: commit was written.
	PhaseCommitted
	// PhaseDeleting: a delete is about to write delete_region.
	PhaseDeleting
	// PhaseWritten: delete_region was written.
	PhaseWritten
)

var phaseNames = [...]string{
	PhaseBegin: "begin", PhaseCreated: "created", PhaseConfigured: "configured",
	PhaseAllocating: "allocating", PhaseAttached: "attached", PhaseCommitted: "committed",
	PhaseDeleting: "deleting", PhaseWritten: "written",
}

func (p Phase) String() string {
	if p.valid() {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

func (p Phase) valid() bool { return p >= PhaseBegin && int(p) < len(phaseNames) }

// Outcome is how an operation ended.
type Outcome uint8

const (
	// Finished: completed, or rolled back to nothing by the daemon.
	Finished Outcome = iota + 1
	// Failed: the caller was told the operation failed; a restart must not
	// resume it (for a delete: never write delete_region for it again).
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Finished:
		return "finished"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Intent is one journalled operation.
type Intent struct {
	ID          uint64 `json:"id"`
	Op          Op     `json:"op"`
	Phase       Phase  `json:"phase"`
	RootDecoder string `json:"root_decoder"`
	// Name is the region claimed (create) or deleted.
	Name       string `json:"name,omitempty"`
	Generation uint64 `json:"generation,omitempty"`
	Type       string `json:"type,omitempty"`
	UUID       string `json:"uuid,omitempty"`
	Size       uint64 `json:"size,omitempty"`
	Resource   uint64 `json:"resource,omitempty"`
	// Ino is the region directory's inode number when the intent was
	// written (delete): recovery deletes only that directory's region.
	Ino     uint64   `json:"ino,omitempty"`
	Targets []string `json:"targets,omitempty"`
	// Allocated lists endpoint decoders whose DPA this operation set, with
	// the mode they had before, so a rollback can restore them.
	Allocated []Allocation `json:"allocated,omitempty"`
	// BootID is the kernel boot the intent was written under ("" when
	// unknown); an intent of another boot describes kernel state that no
	// longer exists.
	BootID  string    `json:"boot_id,omitempty"`
	Started time.Time `json:"started"`
}

// Allocation is one endpoint decoder a create allocated.
type Allocation struct {
	Decoder  string `json:"decoder"`
	OldMode  string `json:"old_mode"`
	Position int    `json:"position"`
}

func (in *Intent) clone() *Intent {
	c := *in
	c.Targets = append([]string(nil), in.Targets...)
	c.Allocated = append([]Allocation(nil), in.Allocated...)
	return &c
}

// recordKind tells the records of the log apart.
type recordKind uint8

const (
	// kindIntent is an operation's whole state; the latest one of an id
	// wins.
	kindIntent recordKind = iota + 1
	// kindDone ends an operation.
	kindDone
	// kindReserve reserves generation numbers up to Reserve.
	kindReserve
)

// record is one entry of the log. Payloads are JSON: readable with a hex
// dump, and new optional fields do not need a new Version.
type record struct {
	Kind    recordKind `json:"k"`
	Intent  *Intent    `json:"intent,omitempty"`
	ID      uint64     `json:"id,omitempty"`
	Outcome Outcome    `json:"outcome,omitempty"`
	Reserve uint64     `json:"reserve,omitempty"`
}

func (r *record) check() error {
	switch r.Kind {
	case kindIntent:
		if r.Intent == nil || r.Intent.ID == 0 {
			return errors.New("intent record without an intent")
		}
		if !r.Intent.Op.valid() {
			return fmt.Errorf("intent %d: unknown operation %d", r.Intent.ID, r.Intent.Op)
		}
		if !r.Intent.Phase.valid() {
			return fmt.Errorf("intent %d: unknown phase %d", r.Intent.ID, r.Intent.Phase)
		}
	case kindDone:
		if r.ID == 0 || (r.Outcome != Finished && r.Outcome != Failed) {
			return fmt.Errorf("done record id %d outcome %d", r.ID, r.Outcome)
		}
	case kindReserve:
	default:
		return fmt.Errorf("unknown record kind %d", r.Kind)
	}
	return nil
}

func encodeHeader() []byte {
	b := make([]byte, headerSize)
	copy(b, magic[:])
	binary.LittleEndian.PutUint32(b[8:], Version)
	binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b[:12], castagnoli))
	return b
}

// encodeFrame appends one framed record to buf.
func encodeFrame(buf []byte, r *record) ([]byte, error) {
	p, err := json.Marshal(r)
	if err != nil {
		return buf, err
	}
	if len(p) > maxPayload {
		return buf, fmt.Errorf("record of %d bytes exceeds %d", len(p), maxPayload)
	}
	var h [frameHeader]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(p)))
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(p, castagnoli))
	buf = append(buf, h[:]...)
	return append(buf, p...), nil
}

// VersionError is a log written in a format this build does not read.
type VersionError struct {
	Path    string
	Version uint32
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("journal %s has format version %d; this cxlregiond reads version %d only and will not guess: "+
		"refusing to start (run the cxlregiond that wrote it to finish its operations, or move the file away)",
		e.Path, e.Version, Version)
}

// CorruptError is a log damaged anywhere but in its last record.
type CorruptError struct {
	Path   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal %s is corrupt at byte %d (%s): refusing to start; nothing was changed", e.Path, e.Offset, e.Reason)
}

// decoded is what a log file holds.
type decoded struct {
	records []record
	// torn is the number of bytes at the end dropped as a torn append.
	torn int64
}

// decode reads a whole log. The last record may be torn (a crash in the
// middle of an append): it is dropped. A bad record with anything after it
// is corruption, as is a bad header: the caller refuses to start.
func decode(path string, b []byte) (*decoded, error) {
	if len(b) < headerSize {
		if len(b) == 0 {
			return nil, &CorruptError{Path: path, Reason: "empty file, no header"}
		}
		return nil, &CorruptError{Path: path, Reason: "short header"}
	}
	if !bytes.Equal(b[:8], magic[:]) {
		return nil, &CorruptError{Path: path, Reason: "not a cxlregiond journal (bad magic)"}
	}
	if crc32.Checksum(b[:12], castagnoli) != binary.LittleEndian.Uint32(b[12:16]) {
		return nil, &CorruptError{Path: path, Offset: 8, Reason: "header checksum"}
	}
	if v := binary.LittleEndian.Uint32(b[8:12]); v != Version {
		return nil, &VersionError{Path: path, Version: v}
	}
	d := &decoded{}
	off := headerSize
	for off < len(b) {
		rest := b[off:]
		bad := func(reason string) (*decoded, error) {
			if tornTail(rest) {
				d.torn = int64(len(rest))
				return d, nil
			}
			return nil, &CorruptError{Path: path, Offset: int64(off), Reason: reason}
		}
		if len(rest) < frameHeader {
			return bad("short record header")
		}
		n := int(binary.LittleEndian.Uint32(rest[0:]))
		if n == 0 || n > maxPayload {
			return bad(fmt.Sprintf("record length %d", n))
		}
		if len(rest) < frameHeader+n {
			return bad("short record")
		}
		p := rest[frameHeader : frameHeader+n]
		if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(rest[4:]) {
			return bad("record checksum")
		}
		var r record
		if err := json.Unmarshal(p, &r); err != nil {
			return nil, &CorruptError{Path: path, Offset: int64(off), Reason: "record: " + err.Error()}
		}
		if err := r.check(); err != nil {
			return nil, &CorruptError{Path: path, Offset: int64(off), Reason: err.Error()}
		}
		d.records = append(d.records, r)
		off += frameHeader + n
	}
	return d, nil
}

// tornTail tells whether a bad record starting rest is the torn last
// append: its declared length runs to or past the end of the file (the
// append stopped part way, or its last bytes never reached the disk), or
// the rest of the file is zeros (a file system that extended the file
// before the data landed). Anything else after a bad record means damage
// in the middle, which is not guessed around.
func tornTail(rest []byte) bool {
	if len(rest) < frameHeader {
		return true
	}
	if n := int(binary.LittleEndian.Uint32(rest[0:])); n > 0 && n <= maxPayload && frameHeader+n >= len(rest) {
		return true
	}
	return bytes.Count(rest, []byte{0}) == len(rest)
}
