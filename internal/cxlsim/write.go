package cxlsim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrKernelOops is returned by a write during which the simulated kernel
// oopsed. On a real kernel the writing task is killed and the machine is
// left wedged; the model logs the BUG, finishes the teardown so its state
// stays consistent, and fails the write with this error (wrapping EFAULT).
var ErrKernelOops = errors.New("kernel oops: the writing task would have been killed")

// WriteFile implements sysfs.Backend: open, one write of data, close. The
// error wraps the errno of the store method (or of the open).
func (k *Kernel) WriteFile(name string, data []byte) error {
	return k.writeFile(context.Background(), name, data)
}

// writeFile is WriteFile whose store sees ctx as its writer's signals
// (k.writeCtx, valid until the store first drops k.mu).
func (k *Kernel) writeFile(ctx context.Context, name string, data []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w: %w", ErrClosed, unix.ENODEV)}
	}
	if d := k.matchDelay(name); d > 0 {
		k.faultsFired++
		k.mu.Unlock()
		k.cfg.clock.Sleep(d)
		k.mu.Lock()
	}
	k.writeCtx = ctx
	err := k.write(name, data)
	k.logWrite(name, data, err)
	k.saveOrLog()
	return err
}

func (k *Kernel) write(name string, data []byte) error {
	if errno := k.matchFault(name); errno != 0 {
		return &fs.PathError{Op: "write", Path: name, Err: fmt.Errorf("injected fault: %w", errno)}
	}
	n, ok := k.resolve(name)
	switch {
	case !ok:
		return pathErr("open", name, unix.ENOENT)
	case n.isDir || n.isLink:
		return pathErr("open", name, unix.EISDIR)
	case n.attr.store == nil:
		return pathErr("open", name, unix.EACCES)
	}
	if len(data) > 4096 {
		return pathErr("write", name, unix.E2BIG)
	}
	if err := n.attr.store(data); err != nil {
		return &fs.PathError{Op: "write", Path: name, Err: err}
	}
	return nil
}

// trimNL drops the one trailing newline sysfs_streq ignores.
func trimNL(data []byte) string { return strings.TrimSuffix(string(data), "\n") }

// driverStore returns the store method of bus/<bus>/drivers/<drv>/<file>.
func (k *Kernel) driverStore(bus, drv, file string) func([]byte) error {
	return func(data []byte) error {
		name := trimNL(data)
		switch {
		case bus == "cxl" && drv == "cxl_region" && file == "bind":
			return k.regionBindStore(name)
		case bus == "cxl" && drv == "cxl_region" && file == "unbind":
			return k.regionUnbindStore(name)
		case bus == "platform" && drv == "cxl_acpi" && file == "unbind":
			return k.acpiUnbindStore(name)
		case bus == "platform" && drv == "cxl_acpi" && file == "bind":
			return k.acpiBindStore(name)
		case bus == "cxl" && drv == "cxl_port" && file == "unbind":
			return k.portUnbindStore(name)
		case bus == "dax":
			return k.daxDriverStore(drv, file, name)
		}
		d := k.busDev(bus, name)
		switch {
		case d == nil:
			return unix.ENODEV
		case file == "unbind" && d.driver != drv:
			return unix.ENODEV
		case file == "bind" && d.driver != "":
			return unix.EBUSY
		}
		return fmt.Errorf("cxlsim does not model %s %s: %w", drv, file, unix.EOPNOTSUPP)
	}
}

// Fault injection.

type fault struct {
	pattern string
	errno   unix.Errno
	count   int // < 0: until cleared
}

type delayRule struct {
	pattern string
	d       time.Duration
}

// InjectFault makes the next count writes whose path matches attrPattern
// fail with errno before the store method runs (count < 0: every write
// until ClearFaults). attrPattern is a path.Match pattern matched against
// every tail of the written path, so "delete_region",
// "decoder0.*/delete_region", "region*/commit" and
// "bus/cxl/drivers/cxl_region/bind" all work.
func (k *Kernel) InjectFault(attrPattern string, errno unix.Errno, count int) {
	if count == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.faults = append(k.faults, &fault{pattern: attrPattern, errno: errno, count: count})
}

// InjectDelay makes every write matching attrPattern wait d before it
// reaches the store method (d == 0 removes the rule).
func (k *Kernel) InjectDelay(attrPattern string, d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, r := range k.delays {
		if r.pattern == attrPattern {
			k.delays = append(k.delays[:i], k.delays[i+1:]...)
			break
		}
	}
	if d > 0 {
		k.delays = append(k.delays, &delayRule{pattern: attrPattern, d: d})
	}
}

// FaultsFired is how many writes an injected fault has failed or an
// injected delay has slowed so far.
func (k *Kernel) FaultsFired() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.faultsFired
}

// ClearFaults removes every injected fault and delay.
func (k *Kernel) ClearFaults() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.faults, k.delays = nil, nil
}

func matchTail(pattern, name string) bool {
	name = strings.Trim(path.Clean("/"+name), "/")
	comps := strings.Split(name, "/")
	for i := range comps {
		if ok, _ := path.Match(pattern, strings.Join(comps[i:], "/")); ok {
			return true
		}
	}
	return false
}

func (k *Kernel) matchFault(name string) unix.Errno {
	for i, f := range k.faults {
		if !matchTail(f.pattern, name) {
			continue
		}
		k.faultsFired++
		if f.count > 0 {
			f.count--
			if f.count == 0 {
				k.faults = append(k.faults[:i], k.faults[i+1:]...)
			}
		}
		return f.errno
	}
	return 0
}

func (k *Kernel) matchDelay(name string) time.Duration {
	for _, r := range k.delays {
		if matchTail(r.pattern, name) {
			return r.d
		}
	}
	return 0
}
