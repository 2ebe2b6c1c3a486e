package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/cobra/doc"
)

// update rewrites the man pages of the source tree (make man); without it
// TestManPagesCurrent fails when a command, flag or help text changed and
// the committed pages were not regenerated.
var update = flag.Bool("update", false, "rewrite docs/man/cxlregionctl*.8")

const manDir = "../../docs/man"

func TestManPagesCurrent(t *testing.T) {
	cmd := newRootCommand()
	cmd.DisableAutoGenTag = true
	date := time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC)
	tmp := t.TempDir()
	if err := doc.GenManTree(cmd, &doc.GenManHeader{Section: "8", Source: "cxlregiond", Manual: "System Administration", Date: &date}, tmp); err != nil {
		t.Fatal(err)
	}
	gen, _ := filepath.Glob(filepath.Join(tmp, "*.8"))
	old, _ := filepath.Glob(filepath.Join(manDir, "cxlregionctl*.8"))
	want := map[string]bool{}
	for _, p := range gen {
		name := filepath.Base(p)
		want[name] = true
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(manDir, name)
		if *update {
			if err := os.WriteFile(dst, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s differs from what the commands generate (err %v): run make man", dst, err)
		}
	}
	for _, p := range old {
		if !want[filepath.Base(p)] {
			if *update {
				os.Remove(p)
			} else {
				t.Errorf("%s is no longer generated: run make man", p)
			}
		}
	}
}
