package uevent

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by Parse's errors for bytes that are not a kernel
// uevent.
var ErrMalformed = errors.New("malformed uevent")

// ErrLibudev says the message is in libudev's format (udevd's re-broadcast,
// "libudev\0" + a binary header), not the kernel's.
var ErrLibudev = errors.New("libudev message, not a kernel uevent")

// libudevMagic starts every message udevd sends on its netlink group.
const libudevMagic = "libudev\x00"

// span is a field's place in the message, [start, end).
type span struct{ start, end int }

// raw is a kernel message's fields as places in the message. Scanning fills
// it without allocating, so messages the filter drops cost no garbage.
type raw struct {
	msg       []byte
	action    span
	devPath   span
	subsystem span
	devType   span
	driver    span
	seqnum    uint64
}

func (r *raw) bytes(s span) []byte { return r.msg[s.start:s.end] }

// Parse parses one kernel uevent, `ACTION@DEVPATH\0KEY=VALUE\0...`. ACTION,
// DEVPATH and SEQNUM are required and the header must agree with them.
func Parse(msg []byte) (Event, error) {
	var r raw
	if err := scan(msg, &r); err != nil {
		return Event{}, err
	}
	return r.event(), nil
}

// scan splits msg into r without allocating.
func scan(msg []byte, r *raw) error {
	*r = raw{msg: msg}
	if len(msg) == 0 {
		return fmt.Errorf("%w: empty message", ErrMalformed)
	}
	if bytes.HasPrefix(msg, []byte(libudevMagic)) {
		return ErrLibudev
	}
	headerEnd := bytes.IndexByte(msg, 0)
	if headerEnd < 0 {
		headerEnd = len(msg)
	}
	at := bytes.IndexByte(msg[:headerEnd], '@')
	if at <= 0 || at == headerEnd-1 {
		return fmt.Errorf("%w: header %q is not ACTION@DEVPATH", ErrMalformed, clip(msg[:headerEnd]))
	}
	hAction, hDevPath := msg[:at], msg[at+1:headerEnd]

	var haveAction, haveDevPath, haveSeqnum bool
	for pos := headerEnd + 1; pos < len(msg); {
		end := pos + bytes.IndexByte(msg[pos:], 0)
		if end < pos {
			end = len(msg)
		}
		field := msg[pos:end]
		start := pos
		pos = end + 1
		if len(field) == 0 {
			continue // the kernel ends the message with a NUL
		}
		eq := bytes.IndexByte(field, '=')
		if eq <= 0 {
			return fmt.Errorf("%w: field %q is not KEY=VALUE", ErrMalformed, clip(field))
		}
		value := span{start + eq + 1, end}
		switch string(field[:eq]) {
		case "ACTION":
			r.action, haveAction = value, true
		case "DEVPATH":
			r.devPath, haveDevPath = value, true
		case "SUBSYSTEM":
			r.subsystem = value
		case "DEVTYPE":
			r.devType = value
		case "DRIVER":
			r.driver = value
		case "SEQNUM":
			n, ok := parseSeqnum(r.bytes(value))
			if !ok {
				return fmt.Errorf("%w: SEQNUM %q", ErrMalformed, clip(r.bytes(value)))
			}
			r.seqnum, haveSeqnum = n, true
		}
	}
	switch {
	case !haveAction:
		return fmt.Errorf("%w: no ACTION", ErrMalformed)
	case !haveDevPath:
		return fmt.Errorf("%w: no DEVPATH", ErrMalformed)
	case !haveSeqnum:
		return fmt.Errorf("%w: no SEQNUM", ErrMalformed)
	case !bytes.Equal(r.bytes(r.action), hAction) || !bytes.Equal(r.bytes(r.devPath), hDevPath):
		return fmt.Errorf("%w: header %q disagrees with ACTION=%q DEVPATH=%q",
			ErrMalformed, clip(msg[:headerEnd]), clip(r.bytes(r.action)), clip(r.bytes(r.devPath)))
	}
	return nil
}

// event builds the Event; its strings share one copy of the message.
func (r *raw) event() Event {
	s := string(r.msg)
	str := func(sp span) string { return s[sp.start:sp.end] }
	return Event{
		Action:    Action(str(r.action)),
		DevPath:   str(r.devPath),
		Subsystem: str(r.subsystem),
		DevType:   str(r.devType),
		Driver:    str(r.driver),
		Seqnum:    r.seqnum,
	}
}

// parseSeqnum parses a decimal uint64 with no sign, spaces or overflow.
func parseSeqnum(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// clip shortens untrusted bytes quoted in an error.
func clip(b []byte) []byte {
	const clipLen = 64
	if len(b) > clipLen {
		return b[:clipLen]
	}
	return b
}
