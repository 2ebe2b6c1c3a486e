package dbustest

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"

	godbus "github.com/godbus/dbus/v5"
)

// Variants turns fuzz input into an a{sv} dictionary as a D-Bus client
// could send it: keys from known (the names the receiver looks for) or
// arbitrary, each value of one of every D-Bus type the wire can carry in a
// variant (basic types, arrays, dictionaries, structs, nested variants),
// with numbers at their limits as often as not. The dictionary has been
// through godbus's marshalling and back, so its Go types are those a
// method handler receives. It returns nil when the input makes no message
// godbus will encode.
func Variants(data []byte, known []string) map[string]godbus.Variant {
	g := gen{data: data}
	m := map[string]godbus.Variant{}
	for n := int(g.byte() % 8); n > 0 && len(g.data) > 0; n-- {
		var key string
		if k := int(g.byte()); k < 2*len(known) {
			key = known[k%len(known)]
		} else {
			key = g.str()
		}
		m[key] = g.variant(0)
	}
	return roundTrip(m)
}

// roundTrip marshals m as the body of a method call and decodes it again.
func roundTrip(m map[string]godbus.Variant) map[string]godbus.Variant {
	msg := &godbus.Message{Type: godbus.TypeMethodCall, Headers: map[godbus.HeaderField]godbus.Variant{
		godbus.FieldPath:   godbus.MakeVariant(godbus.ObjectPath("/")),
		godbus.FieldMember: godbus.MakeVariant("Fuzz"),
	}, Body: []any{m}}
	msg.Headers[godbus.FieldSignature] = godbus.MakeVariant(godbus.SignatureOf(m))
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		return nil
	}
	back, err := godbus.DecodeMessage(&buf)
	if err != nil || len(back.Body) != 1 {
		return nil
	}
	out, _ := back.Body[0].(map[string]godbus.Variant)
	return out
}

type gen struct{ data []byte }

func (g *gen) byte() byte {
	if len(g.data) == 0 {
		return 0
	}
	b := g.data[0]
	g.data = g.data[1:]
	return b
}

// u64 is a number at a limit (0, 1, max of each width, or a power of two
// minus one) or eight raw bytes.
func (g *gen) u64() uint64 {
	switch g.byte() % 8 {
	case 0:
		return 0
	case 1:
		return 1
	case 2:
		return math.MaxUint64
	case 3:
		return math.MaxInt64
	case 4:
		return math.MaxUint32
	case 5:
		return 1<<(g.byte()%64) - 1
	}
	var b [8]byte
	for i := range b {
		b[i] = g.byte()
	}
	return binary.LittleEndian.Uint64(b[:])
}

// str is a string of up to 4 KiB: valid UTF-8 without NUL, as the wire
// requires, with control characters, slashes and dots kept.
func (g *gen) str() string {
	n := int(g.byte())
	if g.byte()%8 == 0 {
		n *= 16
	}
	if n > len(g.data) {
		n = len(g.data)
	}
	s := string(g.data[:n])
	g.data = g.data[n:]
	return strings.ReplaceAll(strings.ToValidUTF8(s, "?"), "\x00", "\x01")
}

func (g *gen) variant(depth int) godbus.Variant {
	kinds := 17
	if depth > 3 {
		kinds = 12 // no containers past this depth
	}
	switch int(g.byte()) % kinds {
	case 0:
		return godbus.MakeVariant(g.byte())
	case 1:
		return godbus.MakeVariant(g.byte()%2 == 1)
	case 2:
		return godbus.MakeVariant(int16(g.u64()))
	case 3:
		return godbus.MakeVariant(uint16(g.u64()))
	case 4:
		return godbus.MakeVariant(int32(g.u64()))
	case 5:
		return godbus.MakeVariant(uint32(g.u64()))
	case 6:
		return godbus.MakeVariant(int64(g.u64()))
	case 7:
		return godbus.MakeVariant(g.u64())
	case 8:
		switch g.byte() % 6 {
		case 0:
			return godbus.MakeVariant(math.NaN())
		case 1:
			return godbus.MakeVariant(math.Inf(1))
		case 2:
			return godbus.MakeVariant(-math.MaxFloat64)
		}
		return godbus.MakeVariant(math.Float64frombits(g.u64()))
	case 9:
		return godbus.MakeVariant(g.str())
	case 10:
		return godbus.MakeVariant(godbus.ObjectPath("/" + strings.Trim(strings.Map(pathRune, g.str()), "/")))
	case 11:
		return godbus.MakeVariant(godbus.Signature{})
	case 12:
		var l []string
		for n := int(g.byte() % 40); n > 0; n-- {
			l = append(l, g.str())
		}
		return godbus.MakeVariant(l)
	case 13:
		n := int(g.byte())
		if n > len(g.data) {
			n = len(g.data)
		}
		b := append([]byte(nil), g.data[:n]...)
		g.data = g.data[n:]
		return godbus.MakeVariant(b)
	case 14:
		m := map[string]godbus.Variant{}
		for n := int(g.byte() % 4); n > 0; n-- {
			m[g.str()] = g.variant(depth + 1)
		}
		return godbus.MakeVariant(m)
	case 15:
		return godbus.MakeVariant(g.variant(depth + 1))
	default:
		return godbus.MakeVariant(struct {
			A string
			B uint32
		}{g.str(), uint32(g.u64())})
	}
}

// pathRune keeps an object path's alphabet: [A-Za-z0-9_/].
func pathRune(r rune) rune {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '_':
		return r
	case r == '/':
		return '/'
	}
	return -1
}
