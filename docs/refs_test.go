package docs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"
)

// skipDirs are never read: version control, build outputs and caches.
var skipDirs = map[string]bool{".git": true, "bin": true, "out": true, ".cache": true, "node_modules": true}

// generated are file names the project's tools write at run time (the QEMU
// suite's outputs under out/), cited without a directory; no repository
// file has them.
var generated = map[string]bool{"results.txt": true, "results.md": true, "guest-logs.txt": true, "console.txt": true}

// Kinds of dangling reference.
const (
	kindPath      = "path"      // a repository path that does not exist
	kindAnchor    = "anchor"    // a Markdown anchor the target file does not define
	kindGuarantee = "guarantee" // a guarantee number docs/design.md does not define
	kindCapture   = "capture"   // a capture id docs/kernel.md does not define
	kindFile      = "file"      // a bare file name no file in the repository has
	kindForeign   = "foreign"   // a citation of a document outside the repository
)

var (
	// A path from the repository root: one of its top-level directories,
	// not preceded by anything that makes it part of a longer path or an
	// import path.
	repoPathRE = regexp.MustCompile(`(?:^|[^A-Za-z0-9_./$~-])((?:api|bench|cmd|deploy|docs|internal|scripts|test)/[A-Za-z0-9_./-]*)`)
	// A Markdown file name with an anchor, with or without a directory.
	mdAnchorRE = regexp.MustCompile(`([A-Za-z0-9_./-]*\.md)#([A-Za-z0-9_-]+)`)
	// A Markdown link's target.
	mdLinkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// "guarantee 4", "guarantees 5 and 2", "guarantee 1-3".
	guaranteeRE = regexp.MustCompile(`(?i)\bguarantees?\s+(\d+(?:\s*(?:,|and|&|/|-)\s*\d+)*)`)
	numberRE    = regexp.MustCompile(`\d+`)
	// A capture id: C and two digits.
	captureRE = regexp.MustCompile(`\bC\d\d\b`)
	// A bare document or data file name (no directory).
	bareFileRE = regexp.MustCompile(`(?:^|[^A-Za-z0-9_./$-])([A-Za-z0-9_][A-Za-z0-9_.-]*\.(?:md|txt|tsv|log))\b`)
	// Documents that live outside the repository, and section numbers
	// (the repository's documents have anchors, not numbered sections).
	foreignRE = regexp.MustCompile(`DESIGN\.md|kernel-cxl\.md|(?:^|[^A-Za-z0-9_])reference/|\.\./shared\b|/work/shared\b|§`)
	// Explicit anchors in Markdown.
	anchorIDRE = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
)

// problem is one dangling reference.
type problem struct {
	file string
	line int
	kind string
	msg  string
}

func (p problem) String() string { return fmt.Sprintf("%s:%d: %s: %s", p.file, p.line, p.kind, p.msg) }

// checker resolves references against one tree (the repository, or a
// synthetic one in the tests).
type checker struct {
	fsys       fs.FS
	basenames  map[string]bool            // every file name in the tree
	anchors    map[string]map[string]bool // Markdown file → its anchors (cache)
	guarantees map[string]bool            // numbers docs/design.md defines
	captures   map[string]bool            // ids docs/kernel.md defines
}

func newChecker(fsys fs.FS) (*checker, error) {
	c := &checker{fsys: fsys, basenames: map[string]bool{}, anchors: map[string]map[string]bool{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && skipDirs[d.Name()] {
			return fs.SkipDir
		}
		if !d.IsDir() {
			c.basenames[d.Name()] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	design, ok := c.anchorsOf("docs/design.md")
	if !ok {
		return nil, errors.New("docs/design.md is missing")
	}
	kernel, ok := c.anchorsOf("docs/kernel.md")
	if !ok {
		return nil, errors.New("docs/kernel.md is missing")
	}
	c.guarantees = map[string]bool{}
	for a := range design {
		if n, ok := strings.CutPrefix(a, "guarantee-"); ok && numberRE.FindString(n) == n {
			c.guarantees[n] = true
		}
	}
	c.captures = map[string]bool{}
	for a := range kernel {
		if captureRE.MatchString(a) && len(a) == 3 {
			c.captures[a] = true
		}
	}
	return c, nil
}

// textFiles lists the files the check reads: every file outside the
// skipped directories and testdata (fixtures are data, not references),
// that is not binary.
func (c *checker) textFiles() ([]string, error) {
	var files []string
	err := fs.WalkDir(c.fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if skipDirs[d.Name()] || d.Name() == "testdata" {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := fs.ReadFile(c.fsys, p)
		if err != nil {
			return err
		}
		if len(b) > 1<<20 || bytes.IndexByte(b, 0) >= 0 {
			return nil
		}
		files = append(files, p)
		return nil
	})
	return files, err
}

func (c *checker) exists(p string) bool {
	p = path.Clean(p)
	if p == "." || strings.HasPrefix(p, "../") || p == ".." {
		return false
	}
	_, err := fs.Stat(c.fsys, p)
	return err == nil
}

// anchorsOf gives a Markdown file's anchors: explicit <a id> and name
// attributes and GitHub's heading ids. ok is false if the file is missing.
func (c *checker) anchorsOf(p string) (map[string]bool, bool) {
	if a, ok := c.anchors[p]; ok {
		return a, a != nil
	}
	b, err := fs.ReadFile(c.fsys, p)
	if err != nil {
		c.anchors[p] = nil
		return nil, false
	}
	a := map[string]bool{}
	for _, m := range anchorIDRE.FindAllStringSubmatch(string(b), -1) {
		a[m[1]] = true
	}
	seen := map[string]int{}
	fence := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			fence = !fence
		}
		if fence || !strings.HasPrefix(line, "#") {
			continue
		}
		s := headingID(strings.TrimLeft(line, "#"))
		if n := seen[s]; n > 0 {
			a[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			a[s] = true
		}
		seen[s]++
	}
	c.anchors[p] = a
	return a, true
}

// headingID is GitHub's id for a heading: lower case, punctuation dropped,
// spaces to hyphens.
func headingID(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// resolve finds the file a reference names: relative to the citing file's
// directory for a Markdown link or a bare name, else from the root.
func (c *checker) resolve(from, ref string, relativeFirst bool) (string, bool) {
	cands := []string{path.Join(path.Dir(from), ref), ref}
	if !relativeFirst {
		cands[0], cands[1] = cands[1], cands[0]
	}
	for _, p := range cands {
		if c.exists(p) {
			return path.Clean(p), true
		}
	}
	return "", false
}

// check returns the dangling references in one file's text.
func (c *checker) check(file, text string) []problem {
	var ps []problem
	seen := map[problem]bool{}
	add := func(line int, kind, format string, args ...any) {
		p := problem{file, line, kind, fmt.Sprintf(format, args...)}
		if !seen[p] { // a path and its anchor can report one missing file twice
			seen[p] = true
			ps = append(ps, p)
		}
	}
	isMD := strings.HasSuffix(file, ".md")
	lines := strings.Split(text, "\n")
	if strings.HasSuffix(file, ".go") {
		lines = goComments(lines)
	}
	for i, line := range lines {
		n := i + 1
		if !strings.ContainsAny(line, "/.#C§") && !strings.Contains(line, "uarantee") {
			continue // no reference of any kind
		}
		if m := foreignRE.FindString(line); m != "" {
			add(n, kindForeign, "%q cites a document outside the repository; cite docs/design.md or docs/kernel.md", strings.TrimLeft(m, " (\"'`"))
		}
		for _, m := range findAll(line, "/", repoPathRE) {
			p := line[m[2]:m[3]]
			if m[3] < len(line) && strings.ContainsRune("*<{[$", rune(line[m[3]])) {
				continue // a pattern, not a path
			}
			p = strings.TrimRight(p, ".,:;-")
			p = strings.TrimSuffix(p, "/")
			if strings.Count(p, "/") == 0 || strings.HasSuffix(p, "...") {
				continue
			}
			if !c.exists(p) {
				add(n, kindPath, "%s does not exist", p)
			}
		}
		for _, m := range findAllString(line, ".md#", mdAnchorRE) {
			target, ok := c.resolve(file, m[1], !strings.Contains(m[1], "/") || isMD)
			if !ok {
				add(n, kindPath, "%s does not exist", m[1])
				continue
			}
			if a, _ := c.anchorsOf(target); !a[m[2]] {
				add(n, kindAnchor, "%s has no anchor #%s", target, m[2])
			}
		}
		if isMD {
			for _, m := range findAllString(line, "](", mdLinkRE) {
				ref := m[1]
				if strings.Contains(ref, "://") || strings.HasPrefix(ref, "mailto:") {
					continue
				}
				p, anchor, _ := strings.Cut(ref, "#")
				if p == "" {
					if a, _ := c.anchorsOf(file); !a[anchor] {
						add(n, kindAnchor, "%s has no anchor #%s", file, anchor)
					}
					continue
				}
				if strings.HasSuffix(p, ".md") && anchor != "" {
					continue // checked with its anchor above
				}
				if _, ok := c.resolve(file, p, true); !ok {
					add(n, kindPath, "link target %s does not exist", p)
				}
			}
		}
		for _, m := range findAllString(strings.ToLower(line), "guarantee", guaranteeRE) {
			for _, g := range numberRE.FindAllString(m[1], -1) {
				if !c.guarantees[g] {
					add(n, kindGuarantee, "guarantee %s is not in docs/design.md", g)
				}
			}
		}
		for _, id := range captureRE.FindAllString(line, -1) {
			if !c.captures[id] {
				add(n, kindCapture, "capture id %s is not in docs/kernel.md", id)
			}
		}
		for _, m := range findAll(line, ".", bareFileRE) {
			name := line[m[2]:m[3]]
			if rest := line[m[3]:]; len(rest) > 1 && rest[0] == '.' && unicode.IsLetter(rune(rest[1])) || strings.HasPrefix(rest, "(") {
				continue // a Go selector or call (l.log.Info), not a file
			}
			if foreignRE.MatchString(name) || generated[name] {
				continue // reported as foreign, or written at run time
			}
			if !c.basenames[name] {
				add(n, kindFile, "no file named %s in the repository", name)
			}
		}
	}
	return ps
}

// findAll runs re on line only if line contains hint: the check reads
// every file of the repository, and most lines cite nothing.
func findAll(line, hint string, re *regexp.Regexp) [][]int {
	if !strings.Contains(line, hint) {
		return nil
	}
	return re.FindAllStringSubmatchIndex(line, -1)
}

// findAllString is findAll giving the matched strings.
func findAllString(line, hint string, re *regexp.Regexp) [][]string {
	if !strings.Contains(line, hint) {
		return nil
	}
	return re.FindAllStringSubmatch(line, -1)
}

// goComments keeps only the comment text of each line of a Go file (the
// rest blanked), so that code and string literals are not read as
// references: the check is about what the code says to its reader.
func goComments(lines []string) []string {
	out := make([]string, len(lines))
	inBlock, inRaw := false, false
	for i, line := range lines {
		var b strings.Builder
		for j := 0; j < len(line); j++ {
			switch {
			case inBlock:
				if strings.HasPrefix(line[j:], "*/") {
					inBlock = false
					j++
					b.WriteByte(' ')
				} else {
					b.WriteByte(line[j])
				}
			case inRaw:
				if line[j] == '`' {
					inRaw = false
				}
			case line[j] == '`':
				inRaw = true
			case line[j] == '"' || line[j] == '\'':
				q := line[j]
				for j++; j < len(line) && line[j] != q; j++ {
					if line[j] == '\\' {
						j++
					}
				}
			case strings.HasPrefix(line[j:], "//"):
				b.WriteString(line[j+2:])
				j = len(line)
			case strings.HasPrefix(line[j:], "/*"):
				inBlock = true
				j++
			}
		}
		out[i] = b.String()
	}
	return out
}

// checkAll checks every text file of the tree.
func (c *checker) checkAll() ([]problem, error) {
	files, err := c.textFiles()
	if err != nil {
		return nil, err
	}
	var ps []problem
	for _, f := range files {
		b, err := fs.ReadFile(c.fsys, f)
		if err != nil {
			return nil, err
		}
		ps = append(ps, c.check(f, string(b))...)
	}
	return ps, nil
}

// repoRoot is the directory holding go.mod, above the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(dir + "/go.mod"); err == nil {
			return dir
		}
		parent := path.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// TestReferencesResolve: every reference in the repository's text files
// lands on something inside the repository.
func TestReferencesResolve(t *testing.T) {
	c, err := newChecker(os.DirFS(repoRoot(t)))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.checkAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		t.Error(p)
	}
	// The check must have had something to check.
	if len(c.guarantees) != 10 || len(c.captures) != 77 {
		t.Errorf("docs define %d guarantees and %d capture ids, want 10 and 77", len(c.guarantees), len(c.captures))
	}
}

// TestCheckerFindsEachKind feeds the checker a synthetic tree with one
// dangling reference of each kind per file, and one file whose references
// all resolve.
func TestCheckerFindsEachKind(t *testing.T) {
	design := "# Design\n<a id=\"guarantee-1\"></a>\n### Guarantee 1\n<a id=\"guarantee-2\"></a>\n## Data flow\n"
	kernel := "# Kernel\n## The races\n| <a id=\"C01\"></a>C01 | x |\n"
	// Built from pieces so that this file does not cite them itself.
	foreignDoc := "DESIGN" + ".md"
	foreignDir := "reference" + "/real-kernel"
	tests := []struct {
		name, file, text string
		want             []string // kinds, in order; none for a clean file
	}{
		{"clean", "internal/a/doc.go",
			"// docs/design.md guarantee 2, docs/kernel.md#C01, docs/kernel.md#the-races,\n" +
				"// guarantees 1 and 2, C01, internal/a/doc.go, internal/a, docs/design.md#data-flow (docs),\n" +
				"// testdata/*.txt, internal/a/*.go, github.com/x/y/internal/zzz, notes.txt\n", nil},
		{"missing path", "internal/a/doc.go", "// see internal/nothere/x.go.\n", []string{kindPath}},
		{"missing directory", "README.md", "| cmd/nothere | room |\n", []string{kindPath}},
		{"missing md file", "internal/a/doc.go", "// docs/gone.md#top\n", []string{kindPath}},
		{"missing anchor", "internal/a/doc.go", "// docs/kernel.md#C99 and docs/design.md#rooms\n", []string{kindAnchor, kindAnchor, kindCapture}},
		{"missing link target", "docs/x.md", "[here](../internal/gone.go)\n", []string{kindPath}},
		{"missing local anchor", "docs/x.md", "[here](#nowhere)\n", []string{kindAnchor}},
		{"guarantee", "internal/a/x.go", "// (guarantee 4).\n", []string{kindGuarantee}},
		{"guarantee list", "internal/a/x.go", "// guarantees 2 and 9\n", []string{kindGuarantee}},
		{"capture", "internal/a/x.go", "// (C35 OK)\n", []string{kindCapture}},
		{"bare file", "internal/a/x.go", "// the oops of race-oops-example.txt\n", []string{kindFile}},
		{"foreign design", "README.md", "| guarantee (" + foreignDoc + ") |\n", []string{kindForeign}},
		{"foreign reference", "internal/a/x.go", "// machine of " + foreignDir + ": one bridge\n", []string{kindForeign}},
		{"foreign kernel doc", "run.sh", "# (kernel-cxl" + ".md §7)\n", []string{kindForeign}},
		{"section number", "internal/a/x.go", "// delete_region does not (§5.1).\n", []string{kindForeign}},
		{"generated output", "run.sh", "# writes results.txt and guest-logs.txt\n", nil},
		{"go code is not a reference", "internal/a/x.go", "package a\n\nvar p = \"internal/gone/x.go guarantee 99\" // internal/a\nfunc f() { l.log.Info(\"x\") }\n", nil},
		{"go comment is", "internal/a/x.go", "package a\n\nvar p = \"//\" /* guarantee 99 */\n", []string{kindGuarantee}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"go.mod":                        {Data: []byte("module x\n")},
				"docs/design.md":                {Data: []byte(design)},
				"docs/kernel.md":                {Data: []byte(kernel)},
				"internal/a/doc.go":             {Data: []byte("package a\n")},
				"internal/a/testdata/notes.txt": {Data: []byte("C77 guarantee 99 internal/none\n")},
				"bin/cxlregiond":                {Data: []byte("guarantee 99\x00")},
			}
			fsys[tt.file] = &fstest.MapFile{Data: []byte(tt.text)}
			c, err := newChecker(fsys)
			if err != nil {
				t.Fatal(err)
			}
			ps, err := c.checkAll()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range ps {
				if p.file != tt.file {
					t.Errorf("problem in a file the case did not write: %v", p)
					continue
				}
				got = append(got, p.kind)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("kinds %v, want %v; problems:\n%v", got, tt.want, ps)
			}
		})
	}
}

// TestKernelTableMatchesCaptures keeps docs/kernel.md's capture id table
// equal to the captured errno files: the same ids, and each row's 6.1 and
// 6.12 results as captured.
func TestKernelTableMatchesCaptures(t *testing.T) {
	root := repoRoot(t)
	doc, err := os.ReadFile(root + "/docs/kernel.md")
	if err != nil {
		t.Fatal(err)
	}
	type results struct{ k61, k612 string }
	table := map[string]results{}
	rowRE := regexp.MustCompile(`^\| <a id="(C\d\d)"></a>C\d\d \|`)
	for _, line := range strings.Split(string(doc), "\n") {
		m := rowRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		cells := splitRow(line)
		if len(cells) != 7 {
			t.Fatalf("docs/kernel.md: row %s has %d cells, want 7", m[1], len(cells))
		}
		table[m[1]] = results{cells[4], cells[5]}
	}
	captured := map[string]results{}
	for _, k := range []string{"6.1", "6.12"} {
		b, err := os.ReadFile(root + "/internal/cxlsim/testdata/" + k + "/errors.tsv")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			f := strings.Split(line, "\t")
			if len(f) < 5 {
				t.Fatalf("%s errors.tsv: short row %q", k, line)
			}
			r := captured[f[0]]
			if k == "6.1" {
				r.k61 = f[4]
			} else {
				r.k612 = f[4]
			}
			captured[f[0]] = r
		}
	}
	if len(captured) != 77 {
		t.Fatalf("captures have %d ids, want 77", len(captured))
	}
	ids := make([]string, 0, len(captured))
	for id := range captured {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if got, ok := table[id]; !ok {
			t.Errorf("docs/kernel.md has no row for %s", id)
		} else if got != captured[id] {
			t.Errorf("docs/kernel.md %s: 6.1 %s, 6.12 %s; captured %s, %s", id, got.k61, got.k612, captured[id].k61, captured[id].k612)
		}
	}
	for id := range table {
		if _, ok := captured[id]; !ok {
			t.Errorf("docs/kernel.md row %s is not in the captures", id)
		}
	}
}

// splitRow splits a Markdown table row on its unescaped bars.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(strings.TrimSuffix(line, "|"), "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		if line[i] == '\\' && i+1 < len(line) && line[i+1] == '|' {
			cur.WriteByte('|')
			i++
			continue
		}
		if line[i] == '|' {
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
			continue
		}
		cur.WriteByte(line[i])
	}
	return append(cells, strings.TrimSpace(cur.String()))
}
