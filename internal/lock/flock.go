package lock

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The flock is polled with LOCK_NB so that the wait can end with a context or
// a freeze; a blocking flock(2) could only be interrupted by a signal.
const (
	minBackoff = time.Millisecond
	maxBackoff = 50 * time.Millisecond
)

// errStopped says a lock wait ended because its stop channel closed.
var errStopped = errors.New("lock wait stopped")

// LockFile takes an exclusive flock on path, creating the file (0600) if
// needed, and waits until it gets it or ctx ends. It is the lock
// `cxlregionctl lock DECODER -- CMD` takes, and the daemon's writer takes the
// same one. The returned unlock releases it; calling unlock again does
// nothing.
func LockFile(ctx context.Context, path string) (unlock func() error, err error) {
	unlock, err = lockFile(ctx, path, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		}
		return nil, err
	}
	return unlock, nil
}

// lockFile opens path and polls for the exclusive flock until it has it, ctx
// ends, or stop closes (errStopped). Each call opens the file itself: flock
// belongs to the open file description, so two calls in one process exclude
// each other as two processes do.
func lockFile(ctx context.Context, path string, stop <-chan struct{}) (func() error, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	backoff := minBackoff
	for {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
		if err == unix.ENOENT {
			// The lock directory was removed under us (an operator, a
			// tmpfiles clean): make it again as NewRegistry does. A tool
			// still holding a lock on the old file excludes nobody now;
			// the daemon's own writers keep their in-process turn.
			if merr := makeLockDir(filepath.Dir(path)); merr != nil {
				return nil, fmt.Errorf("lock %s: open: %w (making the directory again: %w)", path, err, merr)
			}
			fd, err = unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
		}
		if err != nil {
			return nil, fmt.Errorf("lock %s: open: %w", path, err)
		}
		for {
			err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
			if err == nil {
				break
			}
			if err != unix.EWOULDBLOCK && err != unix.EINTR {
				unix.Close(fd)
				return nil, fmt.Errorf("lock %s: flock: %w", path, err)
			}
			if timer == nil {
				timer = time.NewTimer(backoff)
			} else {
				timer.Reset(backoff)
			}
			select {
			case <-ctx.Done():
				unix.Close(fd)
				return nil, ctx.Err()
			case <-stop:
				unix.Close(fd)
				return nil, errStopped
			case <-timer.C:
			}
			backoff = min(2*backoff, maxBackoff)
		}
		same, err := samePath(fd, path)
		if err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if same {
			return fdUnlocker(fd), nil
		}
		// Someone removed or replaced the file while we waited: a lock on
		// the old inode excludes nobody who opens the path now. Start over.
		unix.Close(fd)
	}
}

// tryLockFile makes one non-blocking attempt at the exclusive flock on path.
// ok is false when another open file description holds it, when the file
// cannot be opened (the lock directory gone: lockFile makes it again), or
// when the file was replaced meanwhile; lockFile, which waits, deals with
// each of those and reports why.
func tryLockFile(path string) (unlock func() error, ok bool) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, false
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		return nil, false
	}
	if same, err := samePath(fd, path); err != nil || !same {
		unix.Close(fd)
		return nil, false
	}
	return fdUnlocker(fd), true
}

// samePath reports whether fd is still the file at path.
func samePath(fd int, path string) (bool, error) {
	var held, now unix.Stat_t
	if err := unix.Fstat(fd, &held); err != nil {
		return false, fmt.Errorf("fstat: %w", err)
	}
	if err := unix.Lstat(path, &now); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("stat: %w", err)
	}
	return held.Dev == now.Dev && held.Ino == now.Ino, nil
}

func fdUnlocker(fd int) func() error {
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			// Closing the only descriptor of the open file description drops
			// the flock; the explicit unlock keeps that true should the fd
			// ever be duplicated.
			uerr := unix.Flock(fd, unix.LOCK_UN)
			cerr := unix.Close(fd)
			err = errors.Join(uerr, cerr)
		})
		return err
	}
}
