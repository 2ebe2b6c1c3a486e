package sysfs_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cxlregion/cxlregiond/internal/devname"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
	"github.com/cxlregion/cxlregiond/internal/sysfs/sysfstest"
)

// oneAttr is a captured tree in which one attribute reads as the fuzzer
// wants, at most a page as sysfs serves it.
type oneAttr struct {
	sysfs.Backend
	name    string
	content []byte
}

func (b oneAttr) ReadFile(name string) ([]byte, error) {
	if name == b.name {
		return b.content, nil
	}
	return b.Backend.ReadFile(name)
}

// attrFiles lists the regular files of a materialized tree, relative to
// its root, sorted.
func attrFiles(tb testing.TB, fsys *sysfs.FS) []string {
	tb.Helper()
	root := string(fsys.Backend().(sysfs.Dir))
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		out = append(out, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// FuzzScanAttribute gives one attribute of a captured real-kernel tree
// arbitrary content, so that every value parser runs on it through the
// daemon's own read path (Scan and the single-object readers). None may
// panic or allocate without bound; a value Scan refuses is a *ParseError
// naming the file; the captured content itself always scans.
func FuzzScanAttribute(f *testing.F) {
	fsys := sysfstest.Materialize(f, capturePath("6.12", "5-bound"))
	files := attrFiles(f, fsys)
	root := string(fsys.Backend().(sysfs.Dir))
	for i, name := range files {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint16(i), b)
	}
	f.Fuzz(func(t *testing.T, i uint16, content []byte) {
		if len(content) > 4096 {
			content = content[:4096]
		}
		name := files[int(i)%len(files)]
		b := sysfs.New(oneAttr{Backend: fsys.Backend(), name: name, content: content})
		topo, err := b.Scan()
		if err != nil {
			var pe *sysfs.ParseError
			if errors.As(err, &pe) && !strings.HasSuffix(name, pe.File) && !strings.HasSuffix(pe.File, filepath.Base(name)) {
				t.Fatalf("Scan with %s = %q: ParseError names %s", name, content, pe.File)
			}
			return
		}
		for _, r := range topo.Regions {
			if !devname.IsRegion(r.Name) {
				t.Fatalf("Scan with %s = %q: region name %q", name, content, r.Name)
			}
			if _, err := b.ReadRegion(r.Name); err != nil && !errors.As(err, new(*sysfs.ParseError)) {
				t.Fatalf("ReadRegion(%s) after a clean Scan: %v", r.Name, err)
			}
		}
		for _, d := range topo.RootDecoders {
			if !devname.IsDecoder(d.Name) {
				t.Fatalf("Scan with %s = %q: decoder name %q", name, content, d.Name)
			}
		}
	})
}
