package uevent

import "log/slog"

// DefaultReceiveBuffer is the socket receive buffer Listen asks for: room
// for tens of thousands of uevents, so a burst (a cxl_acpi unbind, a udev
// trigger of the whole host) does not overflow while the daemon is busy.
const DefaultReceiveBuffer = 16 << 20

// Option configures Listen.
type Option func(*config)

type config struct {
	filter Filter
	log    *slog.Logger
	rcvbuf int
	groups uint32
}

func defaultConfig() config {
	return config{
		filter: DefaultFilter,
		log:    slog.New(slog.DiscardHandler),
		rcvbuf: DefaultReceiveBuffer,
		groups: kernelGroup,
	}
}

// kernelGroup is the netlink multicast group of the kernel's own uevents;
// group 2 is udevd's re-broadcast, which may not run.
const kernelGroup = 1

// WithFilter sets the filter; the default is DefaultFilter.
func WithFilter(f Filter) Option {
	return func(c *config) {
		if f != nil {
			c.filter = f
		}
	}
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// WithReceiveBuffer sets the socket receive buffer size in bytes.
func WithReceiveBuffer(bytes int) Option {
	return func(c *config) {
		if bytes > 0 {
			c.rcvbuf = bytes
		}
	}
}
