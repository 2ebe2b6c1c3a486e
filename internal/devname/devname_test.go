package devname_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/cxlregion/cxlregiond/internal/devname"
)

// predicates are every kind of name the package knows, by the kind column
// of spellings.
var predicates = map[string]func(string) bool{
	"region":      devname.IsRegion,
	"decoder":     devname.IsDecoder,
	"memdev":      devname.IsMemdev,
	"root":        devname.IsRoot,
	"port":        devname.IsPort,
	"endpoint":    devname.IsEndpoint,
	"pmem_region": devname.IsPmemRegion,
	"dax_region":  devname.IsDAXRegion,
}

// spellings is every accepted and refused spelling: kind is the one
// predicate that accepts the name, "" when all refuse it.
var spellings = []struct {
	name, kind string
}{
	{"region0", "region"},
	{"region12", "region"},
	{"region2147483647", "region"}, // the largest int
	{"region2147483648", ""},       // one more than an int holds
	{"region4294967295", ""},
	{"region12345678901", ""}, // more digits than an int has
	{"region01", ""},          // the kernel never prints a leading zero
	{"region00", ""},
	{"region", ""},
	{"region-1", ""},
	{"region+1", ""},
	{"region 1", ""},
	{"region0\n", ""},
	{" region0", ""},
	{"Region0", ""},
	{"region0/../../x", ""},
	{"region0x1", ""},
	{"region1e3", ""},
	{"region٣", ""}, // a digit, but not an ASCII one
	{"region" + strings.Repeat("9", 4096), ""},
	{"decoder0.0", "decoder"},
	{"decoder12.3", "decoder"},
	{"decoder2147483647.2147483647", "decoder"},
	{"decoder2147483648.0", ""},
	{"decoder0.2147483648", ""},
	{"decoder00.0", ""}, // decoder0.0's second name: a second lock file
	{"decoder0.00", ""},
	{"decoder01.1", ""},
	{"decoder0", ""},
	{"decoder0.", ""},
	{"decoder.0", ""},
	{"decoder0.0.0", ""},
	{"decoder0,0", ""},
	{"decoder0_0", ""}, // the D-Bus path element, not the name
	{"decoder-1.0", ""},
	{"decodera.0", ""},
	{"decoder0.0.lock", ""},
	{"decoder0.0/../x", ""},
	{"../decoder0.0", ""},
	{"mem0", "memdev"},
	{"mem7", "memdev"},
	{"mem07", ""},
	{"memory0", ""},
	{"root0", "root"},
	{"root00", ""},
	{"port1", "port"},
	{"port01", ""},
	{"endpoint4", "endpoint"},
	{"endpoint04", ""},
	{"pmem_region0", "pmem_region"},
	{"pmem_region01", ""},
	{"dax_region3", "dax_region"},
	{"dax_region03", ""},
	{"nvdimm-bridge0", ""}, // not a device the daemon touches
	{"pmem0", ""},
	{"dax0.0", ""},
	{"", ""},
}

func TestSpellings(t *testing.T) {
	for _, tt := range spellings {
		if tt.kind != "" && predicates[tt.kind] == nil {
			t.Fatalf("%q: unknown kind %q", tt.name, tt.kind)
		}
		for kind, is := range predicates {
			if got, want := is(tt.name), kind == tt.kind; got != want {
				t.Errorf("Is %s(%q) = %v, want %v", kind, tt.name, got, want)
			}
		}
		if got, want := devname.IsDevice(tt.name), tt.kind != ""; got != want {
			t.Errorf("IsDevice(%q) = %v, want %v", tt.name, got, want)
		}
	}
}

func TestParseID(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"0", 0, true},
		{"7", 7, true},
		{"10", 10, true},
		{"2147483647", 2147483647, true},
		{"2147483648", 0, false},
		{"9999999999", 0, false},
		{"99999999999", 0, false},
		{"00", 0, false},
		{"01", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"0x1", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := devname.ParseID(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseID(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseDecoder(t *testing.T) {
	tests := []struct {
		in          string
		port, index int
		ok          bool
	}{
		{"decoder0.0", 0, 0, true},
		{"decoder3.1", 3, 1, true},
		{"decoder12.10", 12, 10, true},
		{"decoder00.0", 0, 0, false},
		{"decoder3", 0, 0, false},
		{"region3.1", 0, 0, false},
	}
	for _, tt := range tests {
		port, index, ok := devname.ParseDecoder(tt.in)
		if port != tt.port || index != tt.index || ok != tt.ok {
			t.Errorf("ParseDecoder(%q) = %d, %d, %v; want %d, %d, %v", tt.in, port, index, ok, tt.port, tt.index, tt.ok)
		}
	}
}

// FuzzParseID checks the one property every caller relies on: an accepted
// id has exactly one spelling, the one the kernel's %d prints.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"0", "01", "2147483647", "2147483648", "-0", "٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := devname.ParseID(s)
		if !ok {
			return
		}
		if got := strconv.Itoa(n); got != s {
			t.Fatalf("ParseID(%q) = %d, whose %%d is %q", s, n, got)
		}
	})
}
