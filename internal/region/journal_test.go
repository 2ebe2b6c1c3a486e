package region

import (
	"testing"
)

func TestJournalSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	j, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := &intent{Op: "create", RootDecoder: "decoder0.0", Name: "region0", Phase: "begin"}
	b := &intent{Op: "delete", RootDecoder: "decoder0.0", Name: "region1", Phase: "begin"}
	for _, in := range []*intent{a, b} {
		if err := j.begin(in); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.advance(a, "configured"); err != nil {
		t.Fatal(err)
	}
	if err := j.done(b); err != nil {
		t.Fatal(err)
	}
	gens := map[uint64]bool{}
	for range 10 {
		gens[j.nextGeneration()] = true
	}

	j2, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	left := j2.unfinished()
	if len(left) != 1 || left[0].Name != "region0" || left[0].Phase != "configured" {
		t.Fatalf("unfinished after reopen = %+v, want region0 in phase configured", left)
	}
	if j2.lookupCreate("decoder0.0", "region0") == nil {
		t.Fatal("lookupCreate did not find the unfinished create")
	}
	// A reopened journal must never hand out a generation the earlier run
	// may have used.
	for range 10 {
		if g := j2.nextGeneration(); gens[g] {
			t.Fatalf("generation %d reused after reopen", g)
		}
	}
	// New intents after reopen do not overwrite old ones.
	c := &intent{Op: "delete", Name: "region2"}
	if err := j2.begin(c); err != nil {
		t.Fatal(err)
	}
	if c.ID == left[0].ID {
		t.Fatalf("intent id %d reused", c.ID)
	}
}
