package guard

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// helperOpenLoop opens and closes each FILE N times and prints the mean
// ns per open+close of each, in order: args N FILE...
func helperOpenLoop(args []string) int {
	n, err := strconv.Atoi(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var out []string
	for _, file := range args[1:] {
		start := time.Now()
		for range n {
			fd, err := unix.Open(file, unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			unix.Close(fd)
		}
		out = append(out, strconv.FormatInt(time.Since(start).Nanoseconds()/int64(n), 10))
	}
	fmt.Println(strings.Join(out, " "))
	return 0
}

// BenchmarkOpen measures what the guard adds to an open+close of a guarded
// file while its writer is idle, against an open+close of a similar
// unmarked file in the same run. The opens happen in a child process (the
// daemon's own opens are not held); ns/op includes starting it, the
// open-ns metrics do not. "guarded" also reports the ratio
// guarded/unguarded.
func BenchmarkOpen(b *testing.B) {
	requireFanotify(b)
	dir := b.TempDir()
	root := filepath.Join(dir, "sys")
	guarded := filepath.Join(root, "bus/cxl/devices/decoder0.0/delete_region")
	plain := filepath.Join(root, "bus/cxl/devices/decoder9.0/delete_region")
	for _, p := range []string{guarded, plain} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o200); err != nil {
			b.Fatal(err)
		}
	}
	reg, err := lock.NewRegistry(sysfs.Open(root), filepath.Join(dir, "lock"))
	if err != nil {
		b.Fatal(err)
	}
	g, err := New(Config{Writers: LockWriters(reg), SysfsRoot: root})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	if err := g.Update([]string{"decoder0.0"}); err != nil { // decoder9.0 stays unmarked
		b.Fatal(err)
	}

	run := func(b *testing.B, files ...string) []float64 {
		cmd := exec.Command(os.Args[0], append([]string{strconv.Itoa(b.N)}, files...)...)
		cmd.Env = helperEnviron("openloop")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("openloop: %v", err)
		}
		var ns []float64
		for _, f := range strings.Fields(string(out)) {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				b.Fatal(err)
			}
			ns = append(ns, v)
		}
		if len(ns) != len(files) {
			b.Fatalf("openloop printed %q", out)
		}
		return ns
	}
	b.Run("unguarded", func(b *testing.B) {
		ns := run(b, plain)
		b.ReportMetric(ns[0], "open-ns")
	})
	b.Run("guarded", func(b *testing.B) {
		ns := run(b, guarded, plain)
		b.ReportMetric(ns[0], "open-ns")
		b.ReportMetric(ns[1], "unguarded-open-ns")
		b.ReportMetric(ns[0]/ns[1], "guarded/unguarded")
	})
}
