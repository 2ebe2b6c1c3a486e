package cxlsim

import (
	"context"
	"fmt"
	"sync"

	"github.com/cxlregion/cxlregiond/internal/uevent"
)

// Subscription is one listener on the kernel's uevents, like a netlink
// socket bound to the kobject uevent group: it gets every event the kernel
// sends after Subscribe, in SEQNUM order, filtered as the daemon's netlink
// listener filters them (SUBSYSTEM cxl, nd or dax, and the cxl_acpi
// platform device's bind and unbind).
//
// Its buffer is the socket's receive buffer: when it is full, further
// events are lost and the next Receive returns an error wrapping
// uevent.ErrResync (the ENOBUFS of a real socket); receiving then goes on
// with what was still queued and what comes next.
type Subscription struct {
	k    *Kernel
	mu   sync.Mutex // guards q, lost and shut; max, done and wake are fixed
	q    []uevent.Event
	max  int
	lost int
	done chan struct{}
	wake chan struct{}
	shut bool
}

var _ uevent.Source = (*Subscription)(nil)

// Subscribe starts a listener whose queue holds at most buffer events
// (minimum 1).
func (k *Kernel) Subscribe(buffer int) uevent.Source { return k.subscribe(buffer) }

func (k *Kernel) subscribe(buffer int) *Subscription {
	if buffer < 1 {
		buffer = 1
	}
	s := &Subscription{k: k, max: buffer, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		s.shut = true
		close(s.done)
		return s
	}
	k.subs[s] = struct{}{}
	return s
}

// Receive returns the next event. See Subscription for overflow.
func (s *Subscription) Receive(ctx context.Context) (uevent.Event, error) {
	for {
		s.mu.Lock()
		switch {
		case s.lost > 0:
			n := s.lost
			s.lost = 0
			s.mu.Unlock()
			return uevent.Event{}, fmt.Errorf("cxlsim: %d uevents lost (receive buffer full, ENOBUFS): %w", n, uevent.ErrResync)
		case len(s.q) > 0:
			e := s.q[0]
			s.q[0] = uevent.Event{}
			s.q = s.q[1:]
			s.mu.Unlock()
			return e, nil
		case s.shut:
			s.mu.Unlock()
			return uevent.Event{}, ErrClosed
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return uevent.Event{}, ctx.Err()
		case <-s.wake:
		case <-s.done:
		}
	}
}

// Close ends the subscription: a blocked Receive returns ErrClosed.
func (s *Subscription) Close() error {
	s.k.mu.Lock()
	delete(s.k.subs, s)
	s.k.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeQueueLocked()
	return nil
}

// closeLocked is Close for the kernel's own shutdown (k.mu held).
func (s *Subscription) closeLocked() {
	delete(s.k.subs, s)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeQueueLocked()
}

func (s *Subscription) closeQueueLocked() {
	if !s.shut {
		s.shut = true
		s.q = nil
		close(s.done)
	}
}

func (s *Subscription) deliver(e uevent.Event) {
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		return
	}
	if len(s.q) >= s.max {
		s.lost++
	} else {
		s.q = append(s.q, e)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// DropEvents makes the kernel lose its next n uevents for every listener
// (a fault knob): their SEQNUMs are used, so the gap is visible.
func (k *Kernel) DropEvents(n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dropNext += n
}

// Seqnum is the SEQNUM of the last uevent the kernel sent.
func (k *Kernel) Seqnum() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.st.Seqnum
}

// keep is the netlink listener's filter.
func keep(d *device) bool {
	switch d.subsystem {
	case "cxl", "nd", "dax", "memory":
		return true
	case "platform":
		return d.name == acpiName
	}
	return false
}

// emit sends one uevent (k.mu held). Every event takes a SEQNUM, filtered
// or not, as in the kernel.
func (k *Kernel) emit(action uevent.Action, d *device) {
	k.st.Seqnum++
	if k.dropNext > 0 {
		k.dropNext--
		return
	}
	if !keep(d) {
		return
	}
	e := uevent.Event{
		Action:    action,
		DevPath:   "/" + d.path,
		Subsystem: d.subsystem,
		DevType:   d.devtype,
		Seqnum:    k.st.Seqnum,
	}
	if action == uevent.Bind {
		e.Driver = d.driver
	}
	for s := range k.subs {
		s.deliver(e)
	}
}
