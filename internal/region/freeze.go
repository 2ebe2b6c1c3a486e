package region

import (
	"path"
	"slices"

	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// freeze stops a root decoder's writer: its root is being torn down, so any
// write would race the kernel's teardown (race 2). Queued requests fail with
// ErrFrozen; only a rescan that finds the root again thaws it.
func (e *Engine) freeze(rootDecoder string, reason error) {
	e.mu.Lock()
	evs := e.freezeLocked(rootDecoder, reason)
	e.notifyLocked()
	e.mu.Unlock()
	e.hub.publish(evs...)
}

func (e *Engine) freezeLocked(rootDecoder string, reason error) []Event {
	w, err := e.writers.Writer(rootDecoder)
	if err != nil {
		return nil
	}
	if frozen, _ := w.Frozen(); frozen {
		return nil
	}
	w.Freeze(reason)
	e.log.Warn("writer frozen", "root_decoder", rootDecoder, "reason", reason)
	var evs []Event
	if rs, ok := e.roots[rootDecoder]; ok {
		evs = append(evs, Event{Kind: RootDecoderChanged, RootDecoder: e.rootInfoLocked(rs)})
	}
	return evs
}

// freezeBelow freezes the writer of every root decoder whose device path
// lies below devpath: an unbind of cxl_acpi or of a root port tears down
// every window below it.
func (e *Engine) freezeBelow(devpath string, reason error) {
	e.mu.Lock()
	var evs []Event
	if e.topo != nil {
		for _, rd := range e.topo.RootDecoders {
			if rootAffected(rd, e.topo, devpath) {
				evs = append(evs, e.freezeLocked(rd.Name, reason)...)
			}
		}
	}
	e.notifyLocked()
	e.mu.Unlock()
	e.hub.publish(evs...)
}

// rootAffected reports whether tearing down the device at devpath takes
// the root decoder with it: the cxl_acpi platform device of its root, the
// root port itself, or a host bridge the window interleaves over.
func rootAffected(rd sysfs.RootDecoder, topo *sysfs.Topology, devpath string) bool {
	name := path.Base(devpath)
	switch {
	case name == rd.Port:
		return true
	case slices.Contains(rd.Targets, name):
		return true
	}
	for _, root := range topo.Roots {
		if root.Name == rd.Port && root.Host == name {
			return true
		}
	}
	return false
}

// frozenErr returns the writer's freeze error for a root decoder, or nil.
func (e *Engine) frozenErr(rootDecoder string) error {
	w, err := e.writers.Writer(rootDecoder)
	if err != nil {
		return err
	}
	if frozen, reason := w.Frozen(); frozen {
		return &lock.FrozenError{Writer: rootDecoder, Reason: reason}
	}
	return nil
}
