package cxlsim

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// newQEMU boots the captured QEMU machine on profile with test-sized
// delays.
func newQEMU(t testing.TB, profile string, opts ...Option) *Kernel {
	t.Helper()
	base := []Option{
		WithTopology(QEMUTopology()), WithProfile(profile),
		WithDeleteDelay(0), WithRegisterDelay(2 * time.Millisecond),
		WithTeardownDelay(0), WithRebindDelay(time.Hour), WithAssembleDuration(20 * time.Millisecond),
	}
	k, err := New(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// waitFor polls cond until it holds or a few seconds pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitRegistered waits until a bound region's nd region (pmem) or dax
// device (ram) is registered.
func waitRegistered(t testing.TB, k *Kernel, region string) {
	t.Helper()
	waitFor(t, region+" registration", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		r := k.regions[region]
		return r != nil && r.Registered
	})
}

// errnoName gives the captures' spelling of a write result: OK, EBUSY(16),
// open:ENOENT(2).
func errnoName(err error) string {
	if err == nil {
		return "OK"
	}
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	s := fmt.Sprintf("%s(%d)", unix.ErrnoName(errno), int(errno))
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Op == "open" {
		return "open:" + s
	}
	return s
}

// sysPath turns a path as the captures write it (relative to
// /sys/bus/cxl/devices, or absolute under /sys) into a Backend path.
func sysPath(p string) string {
	if s, ok := strings.CutPrefix(p, "/sys/"); ok {
		return s
	}
	if strings.HasPrefix(p, "cxl/drivers/") || strings.HasPrefix(p, "platform/drivers/") {
		return "bus/" + p
	}
	return "bus/cxl/devices/" + p
}

type lifecycleWrite struct {
	path, value, result string
}

var lifecycleLine = regexp.MustCompile(`^[0-9]+\.[0-9]+ (\S+) <- (.*) : (\S+)$`)

func readLifecycle(t testing.TB, file string) []lifecycleWrite {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []lifecycleWrite
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := lifecycleLine.FindStringSubmatch(sc.Text()); m != nil {
			out = append(out, lifecycleWrite{path: sysPath(m[1]), value: m[2], result: m[3]})
		}
	}
	return out
}

// write writes value+"\n" and fails the test unless the result is want.
func mustWrite(t testing.TB, k *Kernel, path, value, want string) {
	t.Helper()
	if got := errnoName(k.WriteFile(path, []byte(value+"\n"))); got != want {
		t.Fatalf("write %q to %s: got %s, want %s", value, path, got, want)
	}
}

// dump lists the model's bus/cxl/devices in the capture format (package
// sysfstest; docs/kernel.md#captures).
func dump(t testing.TB, k *Kernel) []string {
	t.Helper()
	names, err := k.ReadDir("bus/cxl/devices")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, n := range names {
		base := "bus/cxl/devices/" + n
		target, err := k.ReadLink(base)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, n+" -> "+target)
		k.mu.Lock()
		devPath := k.busDev("cxl", n).path
		k.mu.Unlock()
		var walk func(sub string)
		walk = func(sub string) {
			dir := base
			if sub != "" {
				dir += "/" + sub
			}
			entries, err := k.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				rel := e
				if sub != "" {
					rel = sub + "/" + e
				}
				k.mu.Lock()
				child := sub == "" && k.devAt(devPath+"/"+e) != nil
				nd, _ := k.resolve(base + "/" + rel)
				k.mu.Unlock()
				switch {
				case child:
				case nd.isLink:
					tgt, err := k.ReadLink(base + "/" + rel)
					if err != nil {
						t.Fatal(err)
					}
					lines = append(lines, n+"/"+rel+" -> "+tgt)
				case nd.isDir:
					walk(rel)
				case nd.attr.show != nil:
					v, err := k.ReadFile(base + "/" + rel)
					if err != nil {
						t.Fatal(err)
					}
					lines = append(lines, fmt.Sprintf("%s/%s\t%04o\t%s", n, rel, nd.attr.mode, escape(v)))
				}
			}
		}
		walk("")
	}
	slices.Sort(lines)
	return lines
}

func escape(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		switch {
		case c == '\\':
			s.WriteString(`\\`)
		case c == '\n':
			s.WriteString(`\n`)
		case c == '\t':
			s.WriteString(`\t`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&s, `\x%02x`, c)
		default:
			s.WriteByte(c)
		}
	}
	return s.String()
}

// readCapture reads a sysfs capture, without what the model does not
// model (the endpoint's CDAT blob).
func readCapture(t testing.TB, profile, state string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", profile, "sysfs", state+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if strings.Contains(l, "/CDAT\t") {
			continue
		}
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}
