package journal

import (
	"errors"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the log reader: it never panics,
// returns a *CorruptError or *VersionError when it refuses, and what it
// accepts reads back the same after a rewrite. Seeds: a real log, cut and
// flipped as TestTornAndCorruptLogs does.
func FuzzDecode(f *testing.F) {
	dir := f.TempDir()
	j, err := Open(dir, Options{})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		in := &Intent{Op: OpCreate, RootDecoder: "decoder0.0", Name: "region" + itoa(i), Allocated: []Allocation{{Decoder: "decoder3.0", OldMode: "ram"}}}
		if err := errors.Join(j.Begin(in), j.Advance(in, PhaseAllocating)); err != nil {
			f.Fatal(err)
		}
	}
	snap, err := j.snapshot()
	if err != nil {
		f.Fatal(err)
	}
	j.Close()
	f.Add(snap)
	f.Add(snap[:len(snap)-7])
	f.Add(snap[:headerSize])
	f.Add(append(append([]byte(nil), snap...), 0, 0, 0, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decode("fuzz", b)
		if err != nil {
			var ce *CorruptError
			var ve *VersionError
			if !errors.As(err, &ce) && !errors.As(err, &ve) {
				t.Fatalf("refusal of type %T: %v", err, err)
			}
			return
		}
		j := &Journal{pending: map[uint64]*Intent{}}
		for _, r := range d.records {
			j.apply(&r)
		}
		again, err := j.snapshot()
		if err != nil {
			t.Fatal(err)
		}
		d2, err := decode("fuzz", again)
		if err != nil || d2.torn != 0 {
			t.Fatalf("a rewrite of an accepted log does not read back: %v (torn %d)", err, d2.torn)
		}
		j2 := &Journal{pending: map[uint64]*Intent{}}
		for _, r := range d2.records {
			j2.apply(&r)
		}
		if len(j2.pending) != len(j.pending) || j2.genCap != j.genCap {
			t.Fatalf("rewrite changed the state: %d intents cap %d, now %d cap %d", len(j.pending), j.genCap, len(j2.pending), j2.genCap)
		}
	})
}
