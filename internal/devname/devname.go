package devname

import (
	"math"
	"strings"
)

// MaxID is the largest id the kernel can print: ids are ints from an IDA.
const MaxID = math.MaxInt32

// maxIDDigits is len("2147483647"): a longer run of digits cannot be an id,
// so it is refused before it is converted.
const maxIDDigits = 10

// ParseID reads a kernel device id: "0", or a decimal number without a
// leading zero up to MaxID. It refuses signs, spaces and everything
// strconv would forgive.
func ParseID(s string) (int, bool) {
	if s == "" || len(s) > maxIDDigits || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > MaxID {
		return 0, false
	}
	return n, true
}

// prefixed reports whether s is prefix followed by a kernel id.
func prefixed(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return false
	}
	_, ok = ParseID(rest)
	return ok
}

// IsRegion reports whether s is a region name: region<id> (region0).
func IsRegion(s string) bool { return prefixed(s, "region") }

// IsDecoder reports whether s is a decoder name: decoder<port>.<index>
// (decoder0.0). Root, switch and endpoint decoders share the spelling.
func IsDecoder(s string) bool {
	_, _, ok := ParseDecoder(s)
	return ok
}

// ParseDecoder splits a decoder name into the id of its port and its
// index below that port: decoder3.1 is (3, 1).
func ParseDecoder(s string) (port, index int, ok bool) {
	rest, ok := strings.CutPrefix(s, "decoder")
	if !ok {
		return 0, 0, false
	}
	p, i, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, 0, false
	}
	if port, ok = ParseID(p); !ok {
		return 0, 0, false
	}
	if index, ok = ParseID(i); !ok {
		return 0, 0, false
	}
	return port, index, true
}

// IsMemdev reports whether s is a memory device name: mem<id>.
func IsMemdev(s string) bool { return prefixed(s, "mem") }

// IsRoot reports whether s is a root port name: root<id>.
func IsRoot(s string) bool { return prefixed(s, "root") }

// IsPort reports whether s is a switch or host bridge port name: port<id>.
func IsPort(s string) bool { return prefixed(s, "port") }

// IsEndpoint reports whether s is an endpoint port name: endpoint<id>.
func IsEndpoint(s string) bool { return prefixed(s, "endpoint") }

// IsPmemRegion reports whether s is the name of the nvdimm bridge device a
// bound pmem region registers: pmem_region<id>.
func IsPmemRegion(s string) bool { return prefixed(s, "pmem_region") }

// IsDAXRegion reports whether s is the name of the dax device a bound ram
// region registers: dax_region<id>.
func IsDAXRegion(s string) bool { return prefixed(s, "dax_region") }

// IsMemoryBlock reports whether s is a memory block's name:
// memory<id> (memory115), the id being the block's phys_index.
func IsMemoryBlock(s string) bool { return prefixed(s, "memory") }

// IsDAXDevice reports whether s is a device-dax instance's name:
// dax<region id>.<id> (dax0.0).
func IsDAXDevice(s string) bool {
	rest, ok := strings.CutPrefix(s, "dax")
	if !ok {
		return false
	}
	r, i, ok := strings.Cut(rest, ".")
	if !ok {
		return false
	}
	_, ok1 := ParseID(r)
	_, ok2 := ParseID(i)
	return ok1 && ok2
}

// IsDevice reports whether s names a CXL bus device the daemon reads or
// writes: a port, decoder, memdev or region, or a region's child.
func IsDevice(s string) bool {
	return IsRegion(s) || IsDecoder(s) || IsMemdev(s) || IsRoot(s) || IsPort(s) ||
		IsEndpoint(s) || IsPmemRegion(s) || IsDAXRegion(s)
}
