//go:build !linux

package uevent

import (
	"context"
	"errors"
)

var errNotLinux = errors.New("uevents need Linux")

// Conn is the kernel's uevent socket; only Linux has one.
type Conn struct{}

var _ Source = (*Conn)(nil)

// Listen fails: only Linux has kobject uevents.
func Listen(opts ...Option) (*Conn, error) { return nil, errNotLinux }

// Receive fails.
func (c *Conn) Receive(ctx context.Context) (Event, error) { return Event{}, errNotLinux }

// Close does nothing.
func (c *Conn) Close() error { return nil }

// Stats returns zero counts.
func (c *Conn) Stats() Stats { return Stats{} }

// ReceiveBufferSize returns 0.
func (c *Conn) ReceiveBufferSize() int { return 0 }
