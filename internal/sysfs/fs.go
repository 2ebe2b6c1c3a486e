// Package sysfs reads the kernel's CXL tree into typed values and writes
// single attributes, keeping the kernel's errno.
//
// Every path is relative to the root of a sysfs tree ("bus/cxl/devices/region0/size"),
// and every access goes through a Backend: the real /sys, a fixture tree on
// disk, or the simulated kernel in internal/cxlsim. The daemon's code path is
// therefore the same on a host and in tests.
//
// Only this package touches files under /sys; only internal/lock's writer
// calls (*FS).Write.
package sysfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Backend is a sysfs tree. Names are slash-separated and relative to the
// tree's root, e.g. "bus/cxl/devices/decoder0.0/delete_region".
//
// Implementations return errors that wrap the system call's errno
// (unix.ENOENT for a missing file, unix.EBUSY from a store method, ...), so
// that errors.Is works on them.
type Backend interface {
	// ReadFile reads an attribute with a single read of at most a page, as
	// sysfs serves it. Some drivers return EAGAIN to a second read.
	ReadFile(name string) ([]byte, error)
	// WriteFile does one open, one write of data and one close. The error of
	// the write is the kernel's answer to the store method.
	WriteFile(name string, data []byte) error
	// ReadDir lists the names in a directory, sorted.
	ReadDir(name string) ([]string, error)
	// ReadLink returns a symbolic link's target as the kernel gives it
	// (relative, e.g. "../../../devices/platform/ACPI0017:00/root0/decoder0.0").
	ReadLink(name string) (string, error)
	// Ino returns the inode number of what name resolves to, following
	// links. kernfs gives each node a 64-bit id that is not reused within a
	// boot, so a device removed and registered again under its old name has
	// a new number.
	Ino(name string) (uint64, error)
}

// ContextWriter is a Backend whose writes can be interrupted: when ctx
// ends, a store that waits in the kernel until its writer is signalled
// (offlining a memory block) returns EINTR. Stores that do not wait are
// not affected.
type ContextWriter interface {
	WriteFileContext(ctx context.Context, name string, data []byte) error
}

// FS is a sysfs tree with typed readers and a single-attribute writer.
type FS struct {
	b Backend
}

// New returns an FS over the given backend.
func New(b Backend) *FS { return &FS{b: b} }

// Open returns an FS over the directory tree at root ("/sys" on a host).
func Open(root string) *FS { return New(Dir(root)) }

// Backend returns the tree the FS reads and writes.
func (f *FS) Backend() Backend { return f.b }

// WriteError is a failed attribute write. Err keeps the errno, so
// errors.Is(err, unix.EBUSY) works on a *WriteError.
type WriteError struct {
	Attr  string // path relative to the sysfs root
	Value string // the value written, without a trailing newline
	Err   error
}

func (e *WriteError) Error() string {
	return fmt.Sprintf("write %q to %s: %v", e.Value, e.Attr, e.Err)
}

func (e *WriteError) Unwrap() error { return e.Err }

// Errno returns the kernel's errno for the write, or 0 when the failure was
// not a system call error.
func (e *WriteError) Errno() unix.Errno {
	var errno unix.Errno
	if errors.As(e.Err, &errno) {
		return errno
	}
	return 0
}

// Write stores value in the attribute name with one open/write/close. A
// trailing newline is added, as echo(1) does; the kernel's parsers accept it
// and uuid_store requires it.
func (f *FS) Write(name, value string) error {
	if err := checkName(name); err != nil {
		return &WriteError{Attr: name, Value: value, Err: err}
	}
	if err := f.b.WriteFile(name, []byte(value+"\n")); err != nil {
		return &WriteError{Attr: name, Value: value, Err: err}
	}
	return nil
}

// WriteContext is Write for a store that may wait in the kernel until a
// signal: when ctx ends the write is interrupted (EINTR) if the backend
// can (ContextWriter), else it runs to its end.
func (f *FS) WriteContext(ctx context.Context, name, value string) error {
	cw, ok := f.b.(ContextWriter)
	if !ok {
		return f.Write(name, value)
	}
	if err := checkName(name); err != nil {
		return &WriteError{Attr: name, Value: value, Err: err}
	}
	if err := cw.WriteFileContext(ctx, name, []byte(value+"\n")); err != nil {
		return &WriteError{Attr: name, Value: value, Err: err}
	}
	return nil
}

// ReadString reads an attribute and trims one trailing newline.
func (f *FS) ReadString(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	b, err := f.b.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// checkName refuses names that could leave the tree. Callers build names
// from validated parts; this is the last line of defence.
func checkName(name string) error {
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || strings.HasPrefix(name, "..") ||
		strings.ContainsAny(name, "\x00\n") {
		return fmt.Errorf("sysfs path %q: %w", name, unix.EINVAL)
	}
	return nil
}

// Dir is a Backend over a directory tree on disk: /sys itself, or a fixture.
type Dir string

var _ Backend = Dir("")

func (d Dir) path(name string) string { return filepath.Join(string(d), filepath.FromSlash(name)) }

// ReadFile implements Backend with a single read(2), as sysfs attributes are
// at most a page.
func (d Dir) ReadFile(name string) ([]byte, error) {
	fd, err := unix.Open(d.path(name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: name, Err: err}
		}
		return buf[:n], nil
	}
}

// WriteFile implements Backend: one open, one write, one close. The file is
// never created or truncated; sysfs attributes exist or the write fails.
func (d Dir) WriteFile(name string, data []byte) error {
	fd, err := unix.Open(d.path(name), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: name, Err: err}
	}
	n, werr := unix.Write(fd, data)
	cerr := unix.Close(fd)
	switch {
	case werr != nil:
		return &fs.PathError{Op: "write", Path: name, Err: werr}
	case n != len(data):
		return &fs.PathError{Op: "write", Path: name, Err: unix.EIO}
	case cerr != nil:
		return &fs.PathError{Op: "close", Path: name, Err: cerr}
	}
	return nil
}

// ReadDir implements Backend.
func (d Dir) ReadDir(name string) ([]string, error) {
	entries, err := os.ReadDir(d.path(name))
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

// ReadLink implements Backend.
func (d Dir) ReadLink(name string) (string, error) {
	return os.Readlink(d.path(name))
}

// Ino implements Backend.
func (d Dir) Ino(name string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(d.path(name), &st); err != nil {
		return 0, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return st.Ino, nil
}

// UeventSeqnumPath is the kernel's last uevent SEQNUM.
const UeventSeqnumPath = "kernel/uevent_seqnum"

// UeventSeqnum reads the SEQNUM of the last uevent the kernel sent. Read
// before a device, it orders what was read against the uevents that follow:
// an event with a SEQNUM at or below it happened before the read.
func (f *FS) UeventSeqnum() (uint64, error) {
	s, err := f.ReadString(UeventSeqnumPath)
	if err != nil {
		return 0, err
	}
	return parseUeventSeqnum(s)
}

func parseUeventSeqnum(s string) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, &ParseError{File: UeventSeqnumPath, Value: s, Err: err}
	}
	return n, nil
}
