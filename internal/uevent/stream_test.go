package uevent

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"golang.org/x/sys/unix"
)

// kernel is how recvmsg reports a message the kernel sent.
var kernel = Sender{PortID: 0, HasCreds: true, UID: 0}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// feed gives the stream a message and returns what accept did.
type outcome struct {
	ev     Event
	ok     bool
	resync bool
}

func feed(t *testing.T, s *stream, msg []byte, from Sender) outcome {
	t.Helper()
	ev, ok, err := s.accept(msg, from)
	if err != nil && !errors.Is(err, ErrResync) {
		t.Fatalf("accept: %v", err)
	}
	return outcome{ev, ok, err != nil}
}

func msgWithSeq(subsystem string, seq uint64) []byte {
	return fmt.Appendf(nil, "add@/devices/x%d\x00ACTION=add\x00DEVPATH=/devices/x%d\x00SUBSYSTEM=%s\x00SEQNUM=%d\x00", seq, seq, subsystem, seq)
}

// A whole real-kernel phase goes through without a resync, and delivers
// exactly what the filter keeps, in kernel order.
// Mutation: check SEQNUM only on events the filter kept → the module,
// drivers and wakeup events in between look like gaps and this fails.
func TestStreamCaptures(t *testing.T) {
	for _, file := range captureFiles(t) {
		s := newStream(DefaultFilter, discardLogger())
		var want, got []uint64
		for _, c := range loadCapture(t, file) {
			msg := c.bytes()
			ev, _ := Parse(msg)
			if DefaultFilter([]byte(ev.Subsystem), []byte(ev.DevType), []byte(ev.DevPath), []byte(ev.Driver)) {
				want = append(want, ev.Seqnum)
			}
			o := feed(t, s, msg, kernel)
			if o.resync {
				t.Fatalf("%s: resync on a gapless capture", c.where)
			}
			if o.ok {
				if o.ev != ev {
					t.Errorf("%s: delivered %+v, parsed %+v", c.where, o.ev, ev)
				}
				got = append(got, o.ev.Seqnum)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: delivered SEQNUMs %v, want %v", file, got, want)
		}
	}
}

// A lost message is reported once as a resync, whether or not the filter
// keeps the messages around the gap, and the stream goes on after it.
// Mutations: drop the sequence check → no resync; check SEQNUM after the
// filter → a gap next to a module event goes unseen.
func TestStreamGap(t *testing.T) {
	tests := []struct {
		name      string
		firstSub  string // the message before the gap
		nextSub   string // the message after it
		firstKept bool
	}{
		{"cxl, gap, cxl", "cxl", "cxl", true},
		{"module, gap, cxl", "module", "cxl", false},
		{"cxl, gap, module", "cxl", "module", true},
		{"module, gap, module", "module", "module", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStream(DefaultFilter, discardLogger())
			if o := feed(t, s, msgWithSeq(tt.firstSub, 10), kernel); o.ok != tt.firstKept || o.resync {
				t.Fatalf("first message: %+v", o)
			}
			// SEQNUM 11 is lost.
			ev, ok, err := s.accept(msgWithSeq(tt.nextSub, 12), kernel)
			var re *ResyncError
			if !errors.As(err, &re) || !errors.Is(err, ErrResync) || re.Lost != 1 {
				t.Fatalf("after a gap: %+v, %v, %v; want a ResyncError losing 1", ev, ok, err)
			}
			if ok {
				t.Error("the message revealing the gap was delivered as well as the resync")
			}
			for seq := uint64(13); seq < 16; seq++ {
				if o := feed(t, s, msgWithSeq("cxl", seq), kernel); !o.ok || o.resync {
					t.Fatalf("SEQNUM %d after the resync: %+v", seq, o)
				}
			}
			if st := s.stats(); st.Gaps != 1 {
				t.Errorf("Gaps = %d, want 1", st.Gaps)
			}
		})
	}
}

func TestStreamSeqnumGoesBack(t *testing.T) {
	s := newStream(AllEvents, discardLogger())
	feed(t, s, msgWithSeq("cxl", 10), kernel)
	if o := feed(t, s, msgWithSeq("cxl", 5), kernel); !o.resync {
		t.Errorf("SEQNUM going back: %+v, want a resync", o)
	}
	if o := feed(t, s, msgWithSeq("cxl", 5), kernel); !o.resync {
		t.Errorf("repeated SEQNUM: %+v, want a resync", o)
	}
}

// Messages not sent by the kernel are dropped, counted, and do not move the
// sequence: a forged SEQNUM cannot cause a resync or hide a gap.
// Mutations: drop the sender check → the forged event is delivered; run the
// sequence check before the sender check → the forged SEQNUM causes resyncs.
func TestStreamDropsForeignSenders(t *testing.T) {
	tests := []struct {
		name string
		from Sender
	}{
		{"userspace port", Sender{PortID: 4242, HasCreds: true, UID: 0}},
		{"no credentials", Sender{PortID: 0}},
		{"non-root credentials", Sender{PortID: 0, HasCreds: true, UID: 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStream(AllEvents, discardLogger())
			feed(t, s, msgWithSeq("cxl", 10), kernel)
			if o := feed(t, s, msgWithSeq("cxl", 999), tt.from); o.ok || o.resync {
				t.Fatalf("forged message: %+v, want it dropped", o)
			}
			if o := feed(t, s, msgWithSeq("cxl", 11), kernel); !o.ok || o.resync {
				t.Fatalf("next kernel message: %+v, want it delivered without a resync", o)
			}
			if st := s.stats(); st.Foreign != 1 || st.Received != 3 || st.Delivered != 2 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// A kernel message that does not parse is dropped; its SEQNUM is unknown, so
// the next message shows the loss.
func TestStreamMalformedKernelMessage(t *testing.T) {
	s := newStream(AllEvents, discardLogger())
	feed(t, s, msgWithSeq("cxl", 10), kernel)
	if o := feed(t, s, []byte("add@/devices/x11\x00ACTION=add\x00SEQNUM=11\x00"), kernel); o.ok || o.resync {
		t.Fatalf("malformed message: %+v", o)
	}
	if o := feed(t, s, msgWithSeq("cxl", 12), kernel); !o.resync {
		t.Errorf("message after a malformed one: %+v, want a resync", o)
	}
	if st := s.stats(); st.Malformed != 1 {
		t.Errorf("Malformed = %d, want 1", st.Malformed)
	}
}

// An overflow is reported once with ENOBUFS in the chain; the next SEQNUM
// starts a new run instead of a second report.
// Mutation: keep haveSeq in overflowed → the first message after the
// overflow reports a second resync.
func TestStreamOverflow(t *testing.T) {
	s := newStream(AllEvents, discardLogger())
	feed(t, s, msgWithSeq("cxl", 10), kernel)
	err := s.overflowed(unix.ENOBUFS)
	if !errors.Is(err, ErrResync) || !errors.Is(err, unix.ENOBUFS) {
		t.Fatalf("overflowed = %v, want ErrResync and ENOBUFS", err)
	}
	if o := feed(t, s, msgWithSeq("cxl", 500), kernel); !o.ok || o.resync {
		t.Errorf("first message after the overflow: %+v, want it delivered", o)
	}
	if o := feed(t, s, msgWithSeq("cxl", 501), kernel); !o.ok || o.resync {
		t.Errorf("second message after the overflow: %+v", o)
	}
	if st := s.stats(); st.Overflows != 1 || st.Gaps != 0 {
		t.Errorf("stats %+v", st)
	}
}
