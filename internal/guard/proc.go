package guard

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// fileID is a file's identity: what fstat says of an event's descriptor,
// of a marked file, of a lock file, and of a process's open descriptors.
type fileID struct {
	dev uint64
	ino uint64
}

func (f fileID) String() string {
	return fmt.Sprintf("%d:%d:%d", unix.Major(f.dev), unix.Minor(f.dev), f.ino)
}

func statID(st *unix.Stat_t) fileID { return fileID{dev: uint64(st.Dev), ino: st.Ino} }

func fstatID(fd int) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileID{}, err
	}
	return statID(&st), nil
}

func pathID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, err
	}
	return statID(&st), nil
}

// maxLineage bounds the parent walk: a loop in a corrupt or racing /proc
// must not spin.
const maxLineage = 64

// procFS reads the few /proc files the guard needs. root is "/proc" on a
// host, a fixture tree in tests.
type procFS struct {
	root string
	// pidfds says that root is this host's /proc, so that whether a
	// process has exited may be asked of the kernel through a pidfd
	// (gone) instead of read from root.
	pidfds bool
}

// lineage returns pid and its ancestors, nearest first. It stops before
// stop (the daemon: a flock the daemon holds is its own writer's, not a
// `cxlregionctl lock` that the opener runs under) and after pid 1.
func (p procFS) lineage(pid, stop int) []int {
	var out []int
	for len(out) < maxLineage && pid > 0 && pid != stop {
		out = append(out, pid)
		if pid == 1 {
			break
		}
		ppid, err := p.ppid(pid)
		if err != nil || slices.Contains(out, ppid) {
			break // exited meanwhile, or a loop in a racing /proc: what we have is all there is
		}
		pid = ppid
	}
	return out
}

// lineage is an opener's process tree, read from /proc on first use:
// most opens meet an idle writer nobody else has locked and never need it.
type lineage struct {
	proc      procFS
	pid, stop int
	pids      []int
	done      bool
}

func (l *lineage) get() []int {
	if !l.done {
		l.pids, l.done = l.proc.lineage(l.pid, l.stop), true
	}
	return l.pids
}

func (p procFS) ppid(pid int) (int, error) {
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	_, ppid, err := parseStat(b)
	return ppid, err
}

// alive reports whether pid is a process that has not exited (a zombie
// has).
func (p procFS) alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	state, _, err := parseStat(b)
	return err == nil && state != "Z" && state != "X"
}

// gone reports whether pid has exited (a zombie has): !alive, asked of
// the kernel through a pidfd where it can be. That is three cheap system
// calls (pidfd_open, a poll that does not wait, close) where alive opens,
// reads and closes /proc/PID/stat, whose read formats some fifty fields
// to give the one it needs; gone runs after every open the guard lets
// through, so this was a quarter of its CPU per open. Same answer: the
// pid unknown (ESRCH) is what a missing /proc/PID is, and a pidfd polls
// readable once the process has exited, zombie or not. A pidfd refused
// (a seccomp filter, pid 0 from another pid namespace) falls back to
// alive.
func (p procFS) gone(pid int) bool {
	if p.pidfds && pid > 0 {
		if exited, ok := pidExited(pid); ok {
			return exited
		}
	}
	return !p.alive(pid)
}

// pidExited asks the kernel whether pid has exited; ok is false if it
// cannot say (pidfd_open or poll refused).
func pidExited(pid int) (exited, ok bool) {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return true, true
	}
	if err != nil {
		return false, false
	}
	defer unix.Close(fd)
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds[:], 0)
	if err != nil {
		return false, false
	}
	return n > 0 && fds[0].Revents&unix.POLLIN != 0, true
}

// parseStat takes the state and the parent pid from a /proc/<pid>/stat
// line. The command name in parentheses may hold spaces and parentheses
// itself, so the fields are counted from the last ')'.
func parseStat(b []byte) (state string, ppid int, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0, fmt.Errorf("proc stat: no command name in %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return "", 0, fmt.Errorf("proc stat: too few fields after command name in %q", b)
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return "", 0, fmt.Errorf("proc stat: parent pid %q: %w", f[1], err)
	}
	return f[0], ppid, nil
}

// comm is the command name of pid for log lines; "?" once it has exited.
func (p procFS) comm(pid int) string {
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "comm"))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// flock is one granted flock(2) lock from /proc/locks.
type flock struct {
	pid          int
	major, minor uint32
	ino          uint64
}

func (f flock) on(id fileID) bool {
	return f.ino == id.ino && f.major == unix.Major(id.dev) && f.minor == unix.Minor(id.dev)
}

func (p procFS) flocks() ([]flock, error) {
	b, err := os.ReadFile(filepath.Join(p.root, "locks"))
	if err != nil {
		return nil, err
	}
	return parseFlocks(b)
}

// parseFlocks returns the granted FLOCK locks of /proc/locks:
//
//	1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF
//
// Waiters ("1: -> FLOCK ...") hold nothing and are skipped, as are POSIX
// and OFD locks (the lock package uses flock(2)) and shared flocks (which
// do not exclude a second shared holder, so they serialize nothing). The
// device is major:minor in hex, the inode decimal.
func parseFlocks(b []byte) ([]flock, error) {
	var out []flock
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] != "FLOCK" || f[3] != "WRITE" {
			continue
		}
		pid, err := strconv.Atoi(f[4])
		if err != nil {
			return nil, fmt.Errorf("proc locks: pid in %q: %w", sc.Text(), err)
		}
		dev := strings.Split(f[5], ":")
		if len(dev) != 3 {
			return nil, fmt.Errorf("proc locks: device:inode in %q", sc.Text())
		}
		major, err1 := strconv.ParseUint(dev[0], 16, 32)
		minor, err2 := strconv.ParseUint(dev[1], 16, 32)
		ino, err3 := strconv.ParseUint(dev[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("proc locks: device:inode in %q", sc.Text())
		}
		out = append(out, flock{pid: pid, major: uint32(major), minor: uint32(minor), ino: ino})
	}
	return out, sc.Err()
}

// lockedAtAll reports whether anyone holds a flock on the file: only then
// is the opener's process tree worth reading.
func lockedAtAll(locks []flock, id fileID) bool {
	for _, l := range locks {
		if l.on(id) {
			return true
		}
	}
	return false
}

// holdsFlock reports whether one of the pids holds a flock on the file.
func holdsFlock(locks []flock, pids []int, id fileID) bool {
	for _, l := range locks {
		if !l.on(id) {
			continue
		}
		for _, pid := range pids {
			if l.pid == pid {
				return true
			}
		}
	}
	return false
}

// fdOpen reports whether pid has the file open. A process that has
// exited has nothing open; a descriptor table the daemon may not read
// (no CAP_SYS_PTRACE over that process) is an error.
func (p procFS) fdOpen(pid int, id fileID) (bool, error) {
	dir := filepath.Join(p.root, strconv.Itoa(pid), "fd")
	names, err := readDirNames(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, n := range names {
		if got, err := pathID(filepath.Join(dir, n)); err == nil && got == id {
			return true, nil
		}
	}
	return false, nil
}

// holding reports whether pid may still have the file open: it has, or
// its descriptors cannot be read. A hold is never ended on a guess; one
// whose process cannot be inspected ends with its close event or its exit.
func (p procFS) holding(pid int, id fileID) bool {
	open, err := p.fdOpen(pid, id)
	return open || err != nil
}

// openedByAny reports whether any process but skip (the daemon, whose
// event descriptors point at the same file) is known to have the file
// open. It reads every process's descriptors, so it runs only when the
// holder's own descriptors no longer explain a hold.
func (p procFS) openedByAny(id fileID, skip int) bool {
	names, err := readDirNames(p.root)
	if err != nil {
		return false
	}
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid == skip {
			continue
		}
		if open, _ := p.fdOpen(pid, id); open {
			return true
		}
	}
	return false
}

func readDirNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}
