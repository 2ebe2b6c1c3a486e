package lock

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Tx is the write side of one turn of a Writer. It is the only way the daemon
// writes sysfs, and it is valid only while the op it was given to runs.
type Tx struct {
	w *Writer
	// mu keeps writes of one op in sequence even if the op hands the Tx to
	// goroutines of its own.
	mu   sync.Mutex
	done bool
}

// Write stores value in the sysfs attribute attr (relative to the sysfs
// root) with sysfs.FS.Write, so the error is a *sysfs.WriteError keeping the
// kernel's errno. It does not look at any context: once an op runs, its
// writes (a rollback included) reach the kernel. On a frozen writer it fails
// with a *FrozenError and writes nothing.
//
// The registry's write observer sees every write that reached sysfs.
func (tx *Tx) Write(attr, value string) error {
	return tx.write(context.Background(), attr, value, false)
}

// WriteContext is Write for a store that waits in the kernel until its
// writer is signalled (offlining memory): when ctx ends, the write is
// interrupted and fails with EINTR (sysfs.FS.WriteContext).
func (tx *Tx) WriteContext(ctx context.Context, attr, value string) error {
	return tx.write(ctx, attr, value, true)
}

func (tx *Tx) write(ctx context.Context, attr, value string, interruptible bool) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	w := tx.w
	if tx.done {
		return fmt.Errorf("writer %s: write %q to %s after the op ended", w.name, value, attr)
	}
	if ferr := w.frozenErr(); ferr != nil {
		return fmt.Errorf("write %q to %s: %w", value, attr, ferr)
	}
	start := time.Now()
	var err error
	if !interruptible {
		err = w.reg.fs.Write(attr, value)
	} else {
		err = w.reg.fs.WriteContext(ctx, attr, value)
	}
	d := time.Since(start)
	if w.reg.observe != nil {
		w.reg.observe(attr, d, err)
	}
	w.reg.log.Debug("sysfs write", "writer", w.name, "attr", attr, "value", value, "duration", d, "err", err)
	return err
}

// end makes the Tx unusable: a Write after the op returned would run without
// the turn.
func (tx *Tx) end() {
	tx.mu.Lock()
	tx.done = true
	tx.mu.Unlock()
}
