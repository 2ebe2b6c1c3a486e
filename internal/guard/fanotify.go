package guard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// markMask is what the guard asks of each marked file: hold every open
// until answered, and say when a descriptor of it is closed.
const markMask = unix.FAN_OPEN_PERM | unix.FAN_CLOSE_WRITE | unix.FAN_CLOSE_NOWRITE

// eventFlags are the flags of the descriptor the kernel opens for each
// event. The control files are write-only (0200): with O_RDONLY the kernel
// cannot open them for the event, and read() on the group fails with
// EACCES, so they must be opened O_WRONLY (measured on 6.1 and 6.12).
const eventFlags = unix.O_WRONLY | unix.O_CLOEXEC | unix.O_LARGEFILE

// group is a fanotify notification group with permission events. Its
// descriptor lives in an *os.File in Go's poller: Close wakes a blocked
// Read, and a response written after Close fails with os.ErrClosed instead
// of reaching whatever file reused the descriptor number.
type group struct {
	f *os.File
}

func openGroup() (*group, error) {
	// FAN_UNLIMITED_QUEUE: a lost close event would keep a writer held;
	// the guard's queue is bounded by the number of openers anyway.
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|unix.FAN_UNLIMITED_QUEUE, eventFlags)
	if err != nil {
		return nil, unsupported("fanotify_init", err)
	}
	return &group{f: os.NewFile(uintptr(fd), "fanotify")}, nil
}

// probe checks that the kernel takes permission-event marks: a kernel
// without CONFIG_FANOTIFY_ACCESS_PERMISSIONS accepts FAN_CLASS_CONTENT but
// refuses FAN_OPEN_PERM in a mark with EINVAL. It marks a fresh file of
// its own, which nobody else opens, and removes the mark again.
func (g *group) probe() error {
	dir, err := os.MkdirTemp("", "cxlregiond-guard-probe-")
	if err != nil {
		return nil // cannot probe here; the first real mark will tell
	}
	defer os.RemoveAll(dir)
	p := dir + "/probe"
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		return nil
	}
	if err := g.markPath(unix.FAN_MARK_ADD, p); err != nil {
		return unsupported("fanotify_mark FAN_OPEN_PERM", err)
	}
	_ = g.markPath(unix.FAN_MARK_REMOVE, p)
	return nil
}

func (g *group) markPath(op uint, path string) error {
	return g.control(func(fd int) error {
		return unix.FanotifyMark(fd, op, markMask, unix.AT_FDCWD, path)
	})
}

// markFD adds or removes the mark on the file an O_PATH descriptor holds.
// Marks are made through descriptors so that a mark can still be removed
// after its sysfs path is gone (the root decoder was torn down).
// fanotify_mark(dirfd, NULL) refuses O_PATH descriptors (EBADF), and a
// real open of a write-only attribute would have to be for writing, so
// the mark goes through the descriptor's /proc/self/fd link, which path
// lookup follows to the file itself.
func (g *group) markFD(op uint, pathFD int) error {
	return g.markPath(op, "/proc/self/fd/"+strconv.Itoa(pathFD))
}

func (g *group) control(f func(fd int) error) error {
	rc, err := g.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// read blocks until events arrive. A read error other than os.ErrClosed
// concerns one event, which the kernel has already answered FAN_DENY.
func (g *group) read(buf []byte) (int, error) { return g.f.Read(buf) }

// respond answers a permission event. The kernel takes the response by the
// event's descriptor number, so it must be sent before that descriptor is
// closed.
func (g *group) respond(eventFD int32, allow bool) error {
	var b [8]byte // struct fanotify_response
	binary.NativeEndian.PutUint32(b[0:], uint32(eventFD))
	verdict := uint32(unix.FAN_DENY)
	if allow {
		verdict = unix.FAN_ALLOW
	}
	binary.NativeEndian.PutUint32(b[4:], verdict)
	_, err := g.f.Write(b[:])
	return err
}

// close ends the group. The kernel then allows every open still waiting
// for an answer.
func (g *group) close() error { return g.f.Close() }

// event is one fanotify_event_metadata record.
type event struct {
	mask uint64
	fd   int32 // a descriptor of the file, ours to close; unix.FAN_NOFD on overflow
	pid  int   // the opener or closer (thread group id)
}

const metadataLen = 24 // sizeof(struct fanotify_event_metadata), version 3

var errMetadataVersion = errors.New("fanotify metadata version mismatch")

// parseEvents splits a read of the group into events, appended to evs.
// Descriptors of the events parsed before an error are still returned so
// the caller can close them.
func parseEvents(evs []event, b []byte) ([]event, error) {
	for len(b) >= metadataLen {
		eventLen := binary.NativeEndian.Uint32(b[0:])
		if b[4] != unix.FANOTIFY_METADATA_VERSION {
			return evs, fmt.Errorf("%w: got %d, want %d", errMetadataVersion, b[4], unix.FANOTIFY_METADATA_VERSION)
		}
		if eventLen < metadataLen || int(eventLen) > len(b) {
			return evs, fmt.Errorf("fanotify event length %d of %d bytes", eventLen, len(b))
		}
		evs = append(evs, event{
			mask: binary.NativeEndian.Uint64(b[8:]),
			fd:   int32(binary.NativeEndian.Uint32(b[16:])),
			pid:  int(int32(binary.NativeEndian.Uint32(b[20:]))),
		})
		b = b[eventLen:]
	}
	return evs, nil
}
