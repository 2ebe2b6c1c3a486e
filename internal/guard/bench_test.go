package guard

import (
	"errors"
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
// guarded/unguarded, and floor-open-ns: an open+close of a third file
// marked the same way by a bare fanotify group of this process that
// allows every open as soon as it reads it (no writer, no /proc): what
// the kernel's round trip to a user-space answer costs by itself, the
// floor under any guard built on permission events.
func BenchmarkOpen(b *testing.B) {
	requireFanotify(b)
	dir := b.TempDir()
	root := filepath.Join(dir, "sys")
	guarded := filepath.Join(root, "bus/cxl/devices/decoder0.0/delete_region")
	plain := filepath.Join(root, "bus/cxl/devices/decoder9.0/delete_region")
	floor := filepath.Join(root, "bus/cxl/devices/decoder8.0/delete_region")
	for _, p := range []string{guarded, plain, floor} {
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
	stopFloor := allowAll(b, floor)
	defer stopFloor()

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
		ns := run(b, guarded, plain, floor)
		b.ReportMetric(ns[0], "open-ns")
		b.ReportMetric(ns[1], "unguarded-open-ns")
		b.ReportMetric(ns[2], "floor-open-ns")
		b.ReportMetric(ns[0]/ns[1], "guarded/unguarded")
	})
}

// allowAll marks path with the guard's mask in a fanotify group of its
// own and answers every open of it FAN_ALLOW as soon as it is read,
// closing every event's descriptor: the least a permission-event guard
// can do. The returned function stops it.
func allowAll(b *testing.B, path string) (stop func()) {
	grp, err := openGroup()
	if err != nil {
		b.Fatal(err)
	}
	if err := grp.markPath(unix.FAN_MARK_ADD, path); err != nil {
		grp.close()
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096*metadataLen)
		var evs []event
		for {
			n, err := grp.read(buf)
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if err != nil {
				continue // one event the kernel could not hand over; it answered it
			}
			evs, _ = parseEvents(evs[:0], buf[:n])
			for _, ev := range evs {
				if ev.fd < 0 {
					continue
				}
				if ev.mask&unix.FAN_OPEN_PERM != 0 {
					_ = grp.respond(ev.fd, true)
				}
				unix.Close(int(ev.fd))
			}
		}
	}()
	return func() {
		grp.close()
		<-done
	}
}
