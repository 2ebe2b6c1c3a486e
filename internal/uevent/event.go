// Package uevent receives the kernel's kobject uevents (NETLINK_KOBJECT_UEVENT,
// group 1), keeps those about CXL regions and the nd and dax objects below
// them, and reports lost events so that the caller rescans.
package uevent

import (
	"context"
	"errors"
	"path"
)

// Action is a uevent's ACTION.
type Action string

// The actions the kernel sends (lib/kobject_uevent.c kobject_actions).
const (
	Add     Action = "add"
	Remove  Action = "remove"
	Change  Action = "change"
	Move    Action = "move"
	Online  Action = "online"
	Offline Action = "offline"
	Bind    Action = "bind"
	Unbind  Action = "unbind"
)

// Event is one kernel uevent.
type Event struct {
	Action    Action
	DevPath   string // DEVPATH, e.g. /devices/platform/ACPI0017:00/root0/decoder0.0/region0
	Subsystem string // SUBSYSTEM: cxl, nd, dax, platform
	DevType   string // DEVTYPE: cxl_region, cxl_decoder_root, nd_pmem, ...
	Driver    string // DRIVER, on bind and unbind
	Seqnum    uint64 // SEQNUM: one more than the previous kernel event
}

// Name is the device's name: the last element of DevPath.
func (e Event) Name() string { return path.Base(e.DevPath) }

// ErrResync says events were lost (the socket overflowed with ENOBUFS, or
// SEQNUM skipped): the caller must rescan sysfs, then go on receiving.
var ErrResync = errors.New("uevents lost: resync needed")

// Source delivers uevents: the kernel's netlink socket, or the simulator.
type Source interface {
	// Receive blocks until the next event that passes the source's filter,
	// ctx is done, or the source is closed. An error wrapping ErrResync is
	// not fatal: rescan and call Receive again.
	Receive(ctx context.Context) (Event, error)
	Close() error
}
