package uevent

import (
	"fmt"
	"log/slog"
	"sync/atomic"
)

// Sender is who sent a netlink message, as recvmsg reports it.
type Sender struct {
	PortID   uint32 // nl_pid of the source address; the kernel's is 0
	HasCreds bool   // an SCM_CREDENTIALS message came with it
	UID      uint32 // the credentials' uid
}

// fromKernel: anyone may send to the uevent group, but only the kernel sends
// from port 0 with uid 0 credentials (the uid is the netns owner's root, 0
// as seen from inside it).
func (s Sender) fromKernel() bool { return s.PortID == 0 && s.HasCreds && s.UID == 0 }

// ResyncError is an error wrapping ErrResync, with the cause of the loss.
type ResyncError struct {
	Lost uint64 // events known lost (SEQNUM gap); 0 when unknown (overflow)
	Err  error  // the receive error (unix.ENOBUFS) for an overflow, nil for a gap
}

func (e *ResyncError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("uevents lost: receive: %v; rescan needed", e.Err)
	}
	return fmt.Sprintf("uevents lost: SEQNUM skipped %d; rescan needed", e.Lost)
}

func (e *ResyncError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrResync, e.Err}
	}
	return []error{ErrResync}
}

// Stats counts what a Conn received.
type Stats struct {
	Received  uint64 // messages read from the socket
	Foreign   uint64 // dropped: not from the kernel
	Malformed uint64 // dropped: from the kernel but unparsable
	Delivered uint64 // passed the filter
	Gaps      uint64 // SEQNUM discontinuities reported
	Overflows uint64 // ENOBUFS reported
}

// stream turns the socket's messages into events: it drops what the kernel
// did not send, checks SEQNUM continuity over every kernel message (before
// the filter, which would hide gaps), and applies the filter. It holds no
// socket, so tests feed it messages directly.
type stream struct {
	filter Filter
	log    *slog.Logger

	lastSeq uint64
	haveSeq bool // false at the start and after an overflow: no gap to see

	received, foreign, malformed, delivered, gaps, overflows atomic.Uint64
}

func newStream(f Filter, log *slog.Logger) *stream {
	if f == nil {
		f = DefaultFilter
	}
	return &stream{filter: f, log: log}
}

// accept handles one message. It returns the event and true when the event
// is to be delivered; an error wrapping ErrResync when SEQNUM shows lost
// events (the message itself is then dropped: the caller's rescan happens
// after it and sees its effect); or false and nil for a dropped message.
func (s *stream) accept(msg []byte, from Sender) (Event, bool, error) {
	s.received.Add(1)
	if !from.fromKernel() {
		s.foreign.Add(1)
		s.log.Debug("uevent from a non-kernel sender dropped", "port_id", from.PortID, "uid", from.UID, "creds", from.HasCreds)
		return Event{}, false, nil
	}
	var r raw
	if err := scan(msg, &r); err != nil {
		s.malformed.Add(1)
		s.log.Warn("kernel uevent dropped", "err", err)
		return Event{}, false, nil
	}
	if err := s.sequence(r.seqnum); err != nil {
		return Event{}, false, err
	}
	if !s.filter(r.bytes(r.subsystem), r.bytes(r.devType), r.bytes(r.devPath), r.bytes(r.driver)) {
		return Event{}, false, nil
	}
	s.delivered.Add(1)
	return r.event(), true, nil
}

// dropTruncated counts a message cut short by the receive buffers.
func (s *stream) dropTruncated() {
	s.received.Add(1)
	s.malformed.Add(1)
	s.log.Warn("truncated uevent dropped")
}

// sequence checks that seq follows the last kernel SEQNUM.
func (s *stream) sequence(seq uint64) error {
	last, had := s.lastSeq, s.haveSeq
	s.lastSeq, s.haveSeq = seq, true
	if !had || seq == last+1 {
		return nil
	}
	s.gaps.Add(1)
	var lost uint64
	if seq > last {
		lost = seq - last - 1
	}
	s.log.Warn("uevent SEQNUM gap", "last", last, "seqnum", seq, "lost", lost)
	return &ResyncError{Lost: lost}
}

// overflowed reports a receive error that lost messages (ENOBUFS). The next
// SEQNUM starts a new run: the loss is reported once.
func (s *stream) overflowed(err error) error {
	s.haveSeq = false
	s.overflows.Add(1)
	s.log.Warn("uevent socket overflowed", "err", err)
	return &ResyncError{Err: err}
}

func (s *stream) stats() Stats {
	return Stats{
		Received:  s.received.Load(),
		Foreign:   s.foreign.Load(),
		Malformed: s.malformed.Load(),
		Delivered: s.delivered.Load(),
		Gaps:      s.gaps.Load(),
		Overflows: s.overflows.Load(),
	}
}
