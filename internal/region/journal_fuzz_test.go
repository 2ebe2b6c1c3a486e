package region

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzJournalRead gives the journal reader a state directory holding one
// arbitrary intent file (torn, corrupted, or well formed with hostile
// names) and an arbitrary generation file. Nothing may panic; a journal
// that opens holds only intents recovery may act on, hands out generations
// above the file's, and numbers new intents above the old ones.
func FuzzJournalRead(f *testing.F) {
	good := `{"id":7,"op":"delete","root_decoder":"decoder0.0","name":"region3","generation":12,` +
		`"uuid":"a6d0c8ec-a2fb-4202-a662-84d58654eeef","type":"pmem","size":268435456,"resource":15300820992,` +
		`"targets":["decoder2.0"],"phase":"deleting","started":"2026-01-01T00:00:00Z"}`
	create := `{"id":2,"op":"create","root_decoder":"decoder0.0","name":"region1","type":"ram",` +
		`"targets":["decoder2.0",""],"allocated":[{"decoder":"decoder2.0","old_mode":"pmem","position":0}],"phase":"allocating"}`
	for _, in := range []string{good, create, good[:len(good)/2], "", "{}", "null", "[]",
		strings.Replace(good, "region3", "../../../../proc/sysrq-trigger", 1),
		strings.Replace(good, "decoder0.0", "decoder0.0\n", 1),
		strings.Replace(create, "decoder2.0", "decoder2.0/../../x", 1),
		strings.Replace(good, `"id":7`, `"id":18446744073709551615`, 1)} {
		f.Add([]byte(in), "1024\n")
	}
	f.Add([]byte(good), "")
	f.Add([]byte(good), "18446744073709551615\n")
	f.Add([]byte(good), "-1\n")
	f.Fuzz(func(t *testing.T, file []byte, generation string) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "intents"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "intents", "1.json"), file, 0o600); err != nil {
			t.Fatal(err)
		}
		if generation != "" {
			if err := os.WriteFile(filepath.Join(dir, "generation"), []byte(generation), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		j, err := openJournal(dir)
		if err != nil {
			return
		}
		for _, in := range j.unfinished() {
			if err := in.check(); err != nil {
				t.Fatalf("opened a journal holding %+v: %v", in, err)
			}
			if _, err := json.Marshal(in); err != nil {
				t.Fatalf("intent %+v does not encode: %v", in, err)
			}
			if in.ID > j.nextID {
				t.Fatalf("intent %d above nextID %d", in.ID, j.nextID)
			}
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(generation), 10, 64); err == nil {
			if g := j.nextGeneration(); g <= n {
				t.Fatalf("generation file %d, next generation %d", n, g)
			}
		}
	})
}
