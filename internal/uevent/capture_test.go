package uevent

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// captured is one message of a real-kernel capture in testdata/: the
// `# uevent N t=T len=L` comment, the ACTION@DEVPATH header and the
// KEY=VALUE lines, which rebuild the bytes the kernel sent.
type captured struct {
	where  string // file:line, for messages
	header string
	vars   []string
	len    int // the len= the capture recorded
}

// bytes rebuilds the message as the kernel sent it.
func (c captured) bytes() []byte {
	var b strings.Builder
	b.WriteString(c.header)
	b.WriteByte(0)
	for _, v := range c.vars {
		b.WriteString(v)
		b.WriteByte(0)
	}
	return []byte(b.String())
}

// value is the KEY's value in the capture, "" when absent.
func (c captured) value(key string) string {
	for _, v := range c.vars {
		if k, val, _ := strings.Cut(v, "="); k == key {
			return val
		}
	}
	return ""
}

// captureFiles lists the capture files, kernel by kernel, phase by phase.
func captureFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/*/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 12 {
		t.Fatalf("found %d capture files in testdata, want the 12 of 6.1 and 6.12", len(files))
	}
	return files
}

// loadCapture reads one capture file.
func loadCapture(t testing.TB, file string) []captured {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []captured
	var cur *captured
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		switch {
		case strings.HasPrefix(text, "# uevent "):
			out = append(out, captured{where: file + ":" + strconv.Itoa(line)})
			cur = &out[len(out)-1]
			for _, field := range strings.Fields(text) {
				if v, ok := strings.CutPrefix(field, "len="); ok {
					if cur.len, err = strconv.Atoi(v); err != nil {
						t.Fatalf("%s:%d: %v", file, line, err)
					}
				}
			}
		case text == "" || cur == nil:
		case cur.header == "":
			cur.header = text
		default:
			cur.vars = append(cur.vars, text)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no uevents", file)
	}
	return out
}
