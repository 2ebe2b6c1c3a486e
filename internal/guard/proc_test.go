package guard

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, stat string
		state      string
		ppid       int
		wantErr    bool
	}{
		{"plain", "4242 (sh) S 17 4242 17 0 -1 4194304 0 0", "S", 17, false},
		{"spaces and parens in comm", "300 (my (odd) cmd) R 200 300 100 0", "R", 200, false},
		{"comm is a paren", "5 ()) Z 4 5 5", "Z", 4, false},
		{"no comm", "300 my cmd R 200", "", 0, true},
		{"truncated", "300 (sh) R", "", 0, true},
		{"ppid not a number", "300 (sh) R x 1", "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, ppid, err := parseStat([]byte(tt.stat))
			if (err != nil) != tt.wantErr || state != tt.state || ppid != tt.ppid {
				t.Fatalf("parseStat(%q) = %q, %d, %v; want %q, %d, error %v",
					tt.stat, state, ppid, err, tt.state, tt.ppid, tt.wantErr)
			}
		})
	}
}

func TestAlive(t *testing.T) {
	p := procFS{root: "testdata/proc"}
	for pid, want := range map[int]bool{300: true, 500: false, 999: false} {
		if got := p.alive(pid); got != want {
			t.Errorf("alive(%d) = %v, want %v", pid, got, want)
		}
	}
}

func TestLineage(t *testing.T) {
	p := procFS{root: "testdata/proc"}
	tests := []struct {
		name      string
		pid, stop int
		want      []int
	}{
		{"up to init", 300, -1, []int{300, 200, 100, 1}},
		{"stops before the daemon", 300, 100, []int{300, 200}},
		{"the daemon itself", 100, 100, nil},
		{"exited process", 999, -1, []int{999}},
		{"parent loop", 400, -1, []int{400}},
		{"no pid", 0, -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.lineage(tt.pid, tt.stop); !slices.Equal(got, tt.want) {
				t.Fatalf("lineage(%d, stop %d) = %v, want %v", tt.pid, tt.stop, got, tt.want)
			}
		})
	}
}

func TestComm(t *testing.T) {
	p := procFS{root: "testdata/proc"}
	if got := p.comm(200); got != "cxlregionctl" {
		t.Errorf("comm(200) = %q", got)
	}
	if got := p.comm(999); got != "?" {
		t.Errorf("comm of an exited process = %q, want ?", got)
	}
}

// TestFlocks reads a /proc/locks captured with a POSIX lock, an exclusive
// flock with a waiter, a shared flock, an OFD lock and flocks on other
// devices: only granted exclusive flocks are holders.
func TestFlocks(t *testing.T) {
	locks, err := procFS{root: "testdata/proc"}.flocks()
	if err != nil {
		t.Fatal(err)
	}
	dev := func(major, minor uint32) uint64 { return unix.Mkdev(major, minor) }
	tests := []struct {
		name string
		pids []int
		file fileID
		want bool
	}{
		{"exclusive flock holder", []int{7011}, fileID{dev(0xfe, 0), 9978977}, true},
		{"holder among ancestors", []int{300, 200, 100}, fileID{dev(0, 0x2a), 1234}, true},
		{"waiter holds nothing", []int{7018}, fileID{dev(0xfe, 0), 9978977}, false},
		{"shared flock", []int{7013}, fileID{dev(0xfe, 0), 9978993}, false},
		{"POSIX lock", []int{7019}, fileID{dev(0xfe, 0), 9979009}, false},
		{"same inode, other device", []int{200}, fileID{dev(0xfe, 0), 1234}, false},
		{"three-digit hex major", []int{4242}, fileID{dev(0x103, 2), 77}, true},
		{"other process", []int{7012}, fileID{dev(0xfe, 0), 9978977}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := holdsFlock(locks, tt.pids, tt.file); got != tt.want {
				t.Fatalf("holdsFlock(%v, %v) = %v, want %v (locks %v)", tt.pids, tt.file, got, tt.want, locks)
			}
		})
	}
}

func TestParseFlocksRejectsGarbage(t *testing.T) {
	for _, line := range []string{
		"1: FLOCK  ADVISORY  WRITE x fe:00:1 0 EOF",
		"1: FLOCK  ADVISORY  WRITE 1 fe:00 0 EOF",
		"1: FLOCK  ADVISORY  WRITE 1 zz:00:1 0 EOF",
	} {
		if _, err := parseFlocks([]byte(line)); err == nil {
			t.Errorf("parseFlocks(%q) accepted it", line)
		}
	}
}

// TestHasOpen checks the descriptor scan against this process's own /proc.
func TestHolding(t *testing.T) {
	p := procFS{root: "/proc"}
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := pathID(path)
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	if p.holding(self, id) {
		t.Fatal("holding before the open")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if !p.holding(self, id) {
		t.Error("holding misses an open descriptor")
	}
	if p.openedByAny(id, self) {
		t.Error("openedByAny counts the skipped process")
	}
	f.Close()
	if p.holding(self, id) {
		t.Error("holding after the close")
	}
	if p.holding(1<<22+1, id) {
		t.Error("an exited process is holding")
	}
}

// TestHoldingUnreadable: a descriptor table that cannot be read keeps the
// hold (a guess must not let a second writer in); a process without one
// has exited.
func TestHoldingUnreadable(t *testing.T) {
	p := procFS{root: "testdata/proc"}
	id := fileID{dev: 1, ino: 2}
	if !p.holding(200, id) {
		t.Error("an unreadable descriptor table ended the hold")
	}
	if p.holding(100, id) {
		t.Error("a process without a descriptor table is holding")
	}
	if p.openedByAny(id, 0) {
		t.Error("openedByAny counted an unreadable table as an opener")
	}
}

// TestGone asks the kernel about a real child: running, a zombie (exited,
// not yet reaped: what alive reads as state Z), reaped. The answer after
// every open the guard lets through comes from here; a wrong "running"
// keeps a killed opener's writer until the holder check.
//
// Mutation: return (false, true) in pidExited instead of polling the
// pidfd and the zombie reads as running.
func TestGone(t *testing.T) {
	p := procFS{root: "/proc", pidfds: true}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if _, ok := pidExited(pid); !ok {
		t.Skip("pidfds refused here; gone reads /proc (TestAlive)")
	}
	if p.gone(pid) {
		t.Fatal("a running child is gone")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the child to be a zombie", func() bool {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			t.Fatal(err) // not reaped: Wait has not been called
		}
		state, _, err := parseStat(b)
		return err == nil && state == "Z"
	})
	if !p.gone(pid) {
		t.Error("a zombie is not gone")
	}
	_ = cmd.Wait()
	if !p.gone(pid) {
		t.Error("a reaped child is not gone")
	}
	if p.gone(os.Getpid()) {
		t.Error("this process is gone")
	}
}
