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
		// Recovery writes what an accepted intent names to sysfs.
		for _, in := range j.pending {
			if err := in.checkNames(); err != nil {
				t.Fatalf("accepted an intent recovery must not act on: %v", err)
			}
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

// TestDecodeRefusesHostileNames: a record whose names are not kernel
// names (a corrupt or planted journal) is refused as corrupt, so recovery
// never writes them to sysfs. The reliability fuzzing of the journal this
// package replaced found the reader opening such intents.
func TestDecodeRefusesHostileNames(t *testing.T) {
	for _, in := range []Intent{
		{ID: 1, Op: OpDelete, Phase: PhaseBegin, RootDecoder: "decoder0.0", Name: "../../../../proc/sysrq-trigger"},
		{ID: 1, Op: OpDelete, Phase: PhaseBegin, RootDecoder: "decoder0.0\n", Name: "region0"},
		{ID: 1, Op: OpCreate, Phase: PhaseBegin, RootDecoder: "decoder0.0", Targets: []string{"decoder2.0/../../x"}},
		{ID: 1, Op: OpCreate, Phase: PhaseBegin, RootDecoder: "decoder0.0", Allocated: []Allocation{{Decoder: "mem0", OldMode: "ram"}}},
		{ID: 1, Op: OpCreate, Phase: PhaseBegin, RootDecoder: "decoder00.0"},
	} {
		good := Intent{ID: 1, Op: OpDelete, Phase: PhaseBegin, RootDecoder: "decoder0.0", Name: "region0", Targets: []string{"decoder2.0", ""}}
		b, err := encodeFrame(encodeHeader(), &record{Kind: kindIntent, Intent: &good})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decode("test", b); err != nil {
			t.Fatalf("a well-formed intent: %v", err)
		}
		b, err = encodeFrame(encodeHeader(), &record{Kind: kindIntent, Intent: &in})
		if err != nil {
			t.Fatal(err)
		}
		var ce *CorruptError
		if _, err := decode("test", b); !errors.As(err, &ce) {
			t.Errorf("%+v: decode = %v, want a CorruptError", in, err)
		}
	}
}
