package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

// The generated files of the source tree (installed by `make deb`): the
// man pages of the daemon and of its config file, and the default config
// file. They come from the flag definitions and flagKeys, so a flag, a
// default or a help text cannot change without them; `make man` rewrites
// them (go test -run TestGeneratedFiles -update).
var update = flag.Bool("update", false, "rewrite the generated files of the source tree")

const (
	manDir            = "../../docs/man"
	defaultConfigPath = "../../deploy/config/cxlregiond.conf"
)

// manDate is the date in the pages' headers: fixed, so the pages change
// only when their text does.
var manDate = time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC)

func TestGeneratedFilesCurrent(t *testing.T) {
	cmd := newRootCommand()
	cmd.DisableAutoGenTag = true
	files := map[string][]byte{}
	tmp := t.TempDir()
	if err := doc.GenManTree(cmd, &doc.GenManHeader{Section: "8", Source: "cxlregiond", Manual: "System Administration", Date: &manDate}, tmp); err != nil {
		t.Fatal(err)
	}
	pages, _ := filepath.Glob(filepath.Join(tmp, "*.8"))
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Join(manDir, filepath.Base(p))] = b
	}
	files[filepath.Join(manDir, "cxlregiond.conf.5")] = confManPage(cmd.Flags())
	files[defaultConfigPath] = defaultConfig(cmd.Flags())
	checkGenerated(t, files, filepath.Join(manDir, "cxlregiond*"))
}

// checkGenerated compares (or, with -update, writes) files; a committed file
// matching stale that is no longer generated is reported too.
func checkGenerated(t *testing.T, files map[string][]byte, stale string) {
	t.Helper()
	old, _ := filepath.Glob(stale)
	for _, p := range old {
		if _, ok := files[p]; !ok {
			if *update {
				os.Remove(p)
			} else {
				t.Errorf("%s is no longer generated: remove it (make man)", p)
			}
		}
	}
	for p, want := range files {
		if *update {
			if err := os.WriteFile(p, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from what the code generates (err %v): run make man", p, err)
		}
	}
}

// configFlags lists the config keys with their flags, in key order.
func configFlags(fs *pflag.FlagSet) []struct {
	key string
	f   *pflag.Flag
} {
	var out []struct {
		key string
		f   *pflag.Flag
	}
	byKey := map[string]string{}
	for fl, key := range flagKeys {
		byKey[key] = fl
	}
	for _, key := range sortedKeys(configKeys) {
		out = append(out, struct {
			key string
			f   *pflag.Flag
		}{key, fs.Lookup(byKey[key])})
	}
	return out
}

// defaultConfig is /etc/cxlregiond/cxlregiond.conf as the package ships
// it: every key commented out with its default and its flag's help.
func defaultConfig(fs *pflag.FlagSet) []byte {
	var b bytes.Buffer
	b.WriteString(`# /etc/cxlregiond/cxlregiond.conf: cxlregiond's tunables, one "key = value"
# a line; see cxlregiond.conf(5). Every key is shown with its default,
# commented out. A flag on cxlregiond's command line wins over this file.
# A change applies when the file is written, on SIGHUP, and on
# "systemctl reload cxlregiond".
# Generated from the daemon's flags (make man).
`)
	for _, kf := range configFlags(fs) {
		fmt.Fprintf(&b, "\n# %s (--%s)\n#%s = %s\n", wrapComment(kf.f.Usage), kf.f.Name, kf.key, kf.f.DefValue)
	}
	return b.Bytes()
}

func wrapComment(s string) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > 74 {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, line), "\n# ")
}

var roffSpecial = regexp.MustCompile(`[\\-]`)

func roff(s string) string {
	s = roffSpecial.ReplaceAllStringFunc(s, func(m string) string { return `\` + m })
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// confManPage is cxlregiond.conf(5).
func confManPage(fs *pflag.FlagSet) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, ".TH \"CXLREGIOND.CONF\" \"5\" \"%s\" \"cxlregiond\" \"File Formats\"\n", manDate.Format("Jan 2006"))
	b.WriteString(`.SH NAME
cxlregiond.conf \- configuration file of cxlregiond
.SH SYNOPSIS
.B /etc/cxlregiond/cxlregiond.conf
.SH DESCRIPTION
cxlregiond(8) reads this file at start (another with \fB\-\-config\fR; a missing
default file is no file). Each line is \fIkey\fR = \fIvalue\fR; a line starting with
# is a comment. An unknown or repeated key is an error naming its line: the
daemon refuses to start, and a reload with such a file keeps the settings in
force. Every key is also a flag of cxlregiond(8) (its name with \- for _);
a flag given on the command line wins over the file.
.PP
The daemon applies a change when the file is written, on SIGHUP, and on
\fBsystemctl reload cxlregiond\fR; every key takes effect at once, without a
restart. The state and lock directories and the guard are flags only.
.SH KEYS
`)
	for _, kf := range configFlags(fs) {
		fmt.Fprintf(&b, ".TP\n\\fB%s\\fR = \\fI%s\\fR\n%s (flag \\fB\\-\\-%s\\fR)\n", roff(kf.key), roff(kf.f.DefValue), roff(kf.f.Usage), roff(kf.f.Name))
	}
	b.WriteString(`.SH FILES
.TP
.I /etc/cxlregiond/cxlregiond.conf
The file the package installs, every key commented out with its default.
.SH SEE ALSO
cxlregiond(8), cxlregionctl(8), systemctl(1)
`)
	return b.Bytes()
}

// TestDefaultConfigIsTheDefaults: the shipped file, with every key
// uncommented, parses and leaves the settings exactly as the flags' defaults.
func TestDefaultConfigIsTheDefaults(t *testing.T) {
	cmd := newRootCommand()
	text := string(defaultConfig(cmd.Flags()))
	uncommented := regexp.MustCompile(`(?m)^#([a-z_]+ = )`).ReplaceAllString(text, "$1")
	kv, err := parseConfig(strings.NewReader(uncommented))
	if err != nil {
		t.Fatal(err)
	}
	if len(kv) != len(configKeys) {
		t.Errorf("the default file sets %d keys, configKeys has %d", len(kv), len(configKeys))
	}
	var defaults settings
	for key := range configKeys {
		if err := configKeys[key](&defaults, mustFlagDefault(t, cmd, key)); err != nil {
			t.Fatal(err)
		}
	}
	var got settings
	if err := got.apply(kv, nil); err != nil {
		t.Fatal(err)
	}
	if got != defaults {
		t.Errorf("default file gives %+v, flags' defaults are %+v", got, defaults)
	}
	// Both tables name the same keys: a key without a flag would have no
	// default or help in the file.
	for key := range configKeys {
		mustFlagDefault(t, cmd, key)
	}
}

func mustFlagDefault(t *testing.T, cmd *cobra.Command, key string) string {
	t.Helper()
	for fl, k := range flagKeys {
		if k == key {
			if f := cmd.Flags().Lookup(fl); f != nil {
				return f.DefValue
			}
		}
	}
	t.Fatalf("config key %s has no flag in flagKeys", key)
	return ""
}
