package sysfs

import (
	"context"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// signalEvery is how often a write whose context ended is signalled until
// it returns: the kernel checks for a pending signal between its passes,
// and a signal that arrives before the first check would be consumed by
// the runtime and lost.
const signalEvery = 20 * time.Millisecond

// WriteFileContext implements ContextWriter on the real /sys. Stores that
// loop in the kernel until a signal (offline_pages under memory pressure,
// "failed due to signal backoff") end with EINTR once ctx ends: the write
// runs on a thread of its own, locked to its goroutine, and that thread is
// sent SIGURG (the Go runtime's preemption signal, which it handles and
// otherwise ignores) until the write returns. The goroutine exits with the
// thread still locked, so the runtime destroys that thread instead of
// reusing it.
func (d Dir) WriteFileContext(ctx context.Context, name string, data []byte) error {
	if ctx.Done() == nil {
		return d.WriteFile(name, data)
	}
	tidc := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		tidc <- unix.Gettid()
		done <- d.WriteFile(name, data)
	}()
	tid := <-tidc
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	pid := unix.Getpid()
	t := time.NewTicker(signalEvery)
	defer t.Stop()
	for {
		// The thread lives until done is sent: the tid names no other.
		_ = unix.Tgkill(pid, tid, unix.SIGURG)
		select {
		case err := <-done:
			return err
		case <-t.C:
		}
	}
}
