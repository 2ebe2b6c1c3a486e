package uevent

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// Every message the real kernels sent parses, and Parse recovers the fields
// the capture lists.
func TestParseCaptures(t *testing.T) {
	total := 0
	for _, file := range captureFiles(t) {
		for _, c := range loadCapture(t, file) {
			msg := c.bytes()
			if len(msg) != c.len {
				t.Errorf("%s: rebuilt %d bytes, the kernel sent %d", c.where, len(msg), c.len)
			}
			ev, err := Parse(msg)
			if err != nil {
				t.Errorf("%s: %v", c.where, err)
				continue
			}
			seq, err := strconv.ParseUint(c.value("SEQNUM"), 10, 64)
			if err != nil {
				t.Fatalf("%s: capture SEQNUM: %v", c.where, err)
			}
			want := Event{
				Action:    Action(c.value("ACTION")),
				DevPath:   c.value("DEVPATH"),
				Subsystem: c.value("SUBSYSTEM"),
				DevType:   c.value("DEVTYPE"),
				Driver:    c.value("DRIVER"),
				Seqnum:    seq,
			}
			if ev != want {
				t.Errorf("%s: Parse = %+v, want %+v", c.where, ev, want)
			}
			if c.header != string(ev.Action)+"@"+ev.DevPath {
				t.Errorf("%s: header %q, parsed %s@%s", c.where, c.header, ev.Action, ev.DevPath)
			}
			total++
		}
	}
	if total != 219 {
		t.Errorf("parsed %d capture messages, the captures hold 219", total)
	}
}

// A few messages checked against literal values, so a capture loader bug
// cannot hide a parser bug.
func TestParseKnownMessages(t *testing.T) {
	tests := []struct {
		msg  string
		want Event
	}{
		{
			"add@/devices/platform/ACPI0017:00/root0/decoder0.0/region0\x00ACTION=add\x00DEVPATH=/devices/platform/ACPI0017:00/root0/decoder0.0/region0\x00SUBSYSTEM=cxl\x00DEVTYPE=cxl_region\x00MODALIAS=cxl:t6\x00SEQNUM=788\x00",
			Event{Add, "/devices/platform/ACPI0017:00/root0/decoder0.0/region0", "cxl", "cxl_region", "", 788},
		},
		{
			"bind@/devices/platform/ACPI0017:00/root0/nvdimm-bridge0/ndbus0/region0\x00ACTION=bind\x00DEVPATH=/devices/platform/ACPI0017:00/root0/nvdimm-bridge0/ndbus0/region0\x00SUBSYSTEM=nd\x00DEVTYPE=nd_pmem\x00DRIVER=nd_region\x00MODALIAS=nd:t2\x00SEQNUM=793\x00",
			Event{Bind, "/devices/platform/ACPI0017:00/root0/nvdimm-bridge0/ndbus0/region0", "nd", "nd_pmem", "nd_region", 793},
		},
		{
			// no trailing NUL, values containing '=' and '@'
			"unbind@/devices/platform/ACPI0017:00\x00ACTION=unbind\x00DEVPATH=/devices/platform/ACPI0017:00\x00SUBSYSTEM=platform\x00X=a=b@c\x00SEQNUM=18446744073709551615",
			Event{Unbind, "/devices/platform/ACPI0017:00", "platform", "", "", 18446744073709551615},
		},
	}
	for _, tt := range tests {
		got, err := Parse([]byte(tt.msg))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.msg, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.msg, got, tt.want)
		}
		if got.Name() != tt.want.DevPath[strings.LastIndexByte(tt.want.DevPath, '/')+1:] {
			t.Errorf("Name() = %q", got.Name())
		}
	}
}

func TestParseMalformed(t *testing.T) {
	const ok = "ACTION=add\x00DEVPATH=/d\x00SUBSYSTEM=cxl\x00SEQNUM=1\x00"
	tests := []struct {
		name string
		msg  string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"only NUL", "\x00", ErrMalformed},
		{"no @", "add/d\x00" + ok, ErrMalformed},
		{"empty action in header", "@/d\x00" + ok, ErrMalformed},
		{"empty devpath in header", "add@\x00" + ok, ErrMalformed},
		{"header only", "add@/d", ErrMalformed},
		{"no ACTION", "add@/d\x00DEVPATH=/d\x00SEQNUM=1\x00", ErrMalformed},
		{"no DEVPATH", "add@/d\x00ACTION=add\x00SEQNUM=1\x00", ErrMalformed},
		{"no SEQNUM", "add@/d\x00ACTION=add\x00DEVPATH=/d\x00", ErrMalformed},
		{"empty SEQNUM", "add@/d\x00ACTION=add\x00DEVPATH=/d\x00SEQNUM=\x00", ErrMalformed},
		{"negative SEQNUM", "add@/d\x00ACTION=add\x00DEVPATH=/d\x00SEQNUM=-1\x00", ErrMalformed},
		{"hex SEQNUM", "add@/d\x00ACTION=add\x00DEVPATH=/d\x00SEQNUM=0x10\x00", ErrMalformed},
		{"SEQNUM with space", "add@/d\x00ACTION=add\x00DEVPATH=/d\x00SEQNUM=1 \x00", ErrMalformed},
		{"SEQNUM overflows", "add@/d\x00ACTION=add\x00DEVPATH=/d\x00SEQNUM=18446744073709551616\x00", ErrMalformed},
		{"field without =", "add@/d\x00" + ok + "garbage\x00", ErrMalformed},
		{"field with empty key", "add@/d\x00" + ok + "=v\x00", ErrMalformed},
		{"header and ACTION disagree", "remove@/d\x00" + ok, ErrMalformed},
		{"header and DEVPATH disagree", "add@/e\x00" + ok, ErrMalformed},
		{"libudev", "libudev\x00\xfe\xed\xca\xfe" + ok, ErrLibudev},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Parse([]byte(tt.msg))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %+v, %v; want %v", ev, err, tt.want)
			}
			if ev != (Event{}) {
				t.Errorf("Parse returned %+v with its error", ev)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, file := range captureFiles(f) {
		for _, c := range loadCapture(f, file) {
			f.Add(c.bytes())
		}
	}
	f.Add([]byte("libudev\x00"))
	f.Add([]byte("add@/d\x00ACTION=add\x00DEVPATH=/d\x00SEQNUM=99999999999999999999\x00"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		ev, err := Parse(msg)
		if err != nil {
			if ev != (Event{}) {
				t.Fatalf("event %+v with error %v", ev, err)
			}
			return
		}
		if ev.Action == "" || ev.DevPath == "" {
			t.Fatalf("accepted %q without action or devpath: %+v", msg, ev)
		}
		// What Parse accepted, re-encoded canonically, parses to the same event.
		again, err := Parse(encode(ev))
		if err != nil || again != ev {
			t.Fatalf("re-encoded %+v parses to %+v, %v", ev, again, err)
		}
		// Filtering sees the same fields as the event.
		var r raw
		if err := scan(msg, &r); err != nil {
			t.Fatalf("Parse accepted what scan refused: %v", err)
		}
		if DefaultFilter(r.bytes(r.subsystem), r.bytes(r.devType), r.bytes(r.devPath), r.bytes(r.driver)) !=
			DefaultFilter([]byte(ev.Subsystem), []byte(ev.DevType), []byte(ev.DevPath), []byte(ev.Driver)) {
			t.Fatalf("filter disagrees between raw and event for %+v", ev)
		}
	})
}

// encode writes an Event as the kernel would.
func encode(ev Event) []byte {
	var b strings.Builder
	b.WriteString(string(ev.Action) + "@" + ev.DevPath + "\x00")
	b.WriteString("ACTION=" + string(ev.Action) + "\x00")
	b.WriteString("DEVPATH=" + ev.DevPath + "\x00")
	if ev.Subsystem != "" {
		b.WriteString("SUBSYSTEM=" + ev.Subsystem + "\x00")
	}
	if ev.DevType != "" {
		b.WriteString("DEVTYPE=" + ev.DevType + "\x00")
	}
	if ev.Driver != "" {
		b.WriteString("DRIVER=" + ev.Driver + "\x00")
	}
	b.WriteString("SEQNUM=" + strconv.FormatUint(ev.Seqnum, 10) + "\x00")
	return []byte(b.String())
}
