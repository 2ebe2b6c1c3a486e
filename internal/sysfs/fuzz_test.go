package sysfs

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/cxlregion/cxlregiond/internal/devname"
)

// FuzzParsers feeds arbitrary attribute contents to every parser: none may
// panic, every accepted value must be one the kernel's format allows, and
// every value the kernel can print must parse back to what it printed.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{"0x0\n", "0x0000000010000000\n", "0xffffffffffffffff\n", "-1\n", "1\n",
		"12\n", "0,1\n", "a6d0c8ec-a2fb-4202-a662-84d58654eeef\n", "00000000-0000-0000-0000-000000000000\n",
		"\n", "0x", "0_1", "0b101", "region0\n"} {
		f.Add(s, uint64(0x390000000), []byte("0123456789abcdef"))
	}
	f.Fuzz(func(t *testing.T, s string, x uint64, raw []byte) {
		// Round trips of what the kernel prints.
		for _, printed := range []string{fmt.Sprintf("%#x\n", x), fmt.Sprintf("0x%016x\n", x), fmt.Sprintf("%d\n", x)} {
			if got, err := parseU64(printed); err != nil || got != x {
				t.Errorf("parseU64(%q) = %#x, %v; want %#x", printed, got, err, x)
			}
		}
		if x == 0 {
			if got, err := parseU64("0x0\n"); err != nil || got != 0 {
				t.Errorf("parseU64(0x0) = %d, %v", got, err)
			}
		}
		signed := int(int32(x))
		if got, err := parseInt(fmt.Sprintf("%d\n", signed)); err != nil || got != signed {
			t.Errorf("parseInt(%d) = %d, %v", signed, got, err)
		}
		if len(raw) >= 16 {
			b := raw[:16]
			u := fmt.Sprintf("%x-%x-%x-%x-%x\n", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
			got, err := parseUUID(u)
			want := strings.TrimSpace(u)
			if want == nullUUID {
				want = ""
			}
			if err != nil || got != want {
				t.Errorf("parseUUID(%q) = %q, %v; want %q", u, got, err, want)
			}
		}

		// Arbitrary input: accepted values are well formed, rejected ones
		// give a reason a ParseError can carry.
		trimmed := strings.TrimSpace(s)
		if _, err := parseU64(s); err != nil && !errors.Is(err, strconv.ErrSyntax) && !errors.Is(err, strconv.ErrRange) {
			t.Errorf("parseU64(%q): unexpected error kind %v", s, err)
		}
		if v, err := parseInt(s); err == nil && !isDecimal(strings.TrimLeft(trimmed, "+-")) {
			t.Errorf("parseInt(%q) = %d, but that is not a decimal number", s, v)
		}
		if v, err := parseBool(s); err == nil && trimmed != map[bool]string{false: "0", true: "1"}[v] {
			t.Errorf("parseBool(%q) = %v", s, v)
		}
		if l, err := parseIntList(s); err == nil && trimmed != "" && len(l) != strings.Count(trimmed, ",")+1 {
			t.Errorf("parseIntList(%q) = %v", s, l)
		}
		if u, err := parseUUID(s); err == nil && u != "" && (u != strings.ToLower(trimmed) || !isUUID(u)) {
			t.Errorf("parseUUID(%q) = %q", s, u)
		}
	})
}

func isDecimal(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// FuzzNames feeds arbitrary strings to the name validators (internal/devname)
// and to
// DeviceAttr, the only way writers build a device path: an accepted name
// is exactly one the kernel prints ("%s%d" of a non-negative int), and a
// path is always bus/cxl/devices/<dev>/<attr> with no way out of it.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"region0", "region12", "decoder0.0", "decoder12.3", "mem0", "port1",
		"endpoint2", "root0", "region01", "decoder00.0", "region2147483648", "region4294967296",
		"../region0", "region0/../../", "region0\n", "decoder0.0\x00", "region-1", "region+1", "Region0", ""} {
		f.Add(s, "delete_region")
	}
	f.Fuzz(func(t *testing.T, name, attr string) {
		if devname.IsRegion(name) {
			var n int
			if _, err := fmt.Sscanf(name, "region%d", &n); err != nil || n < 0 || n > math.MaxInt32 || fmt.Sprintf("region%d", n) != name {
				t.Fatalf("ValidRegionName(%q) but the kernel never prints it", name)
			}
		}
		if devname.IsDecoder(name) {
			var x, y int
			if _, err := fmt.Sscanf(name, "decoder%d.%d", &x, &y); err != nil || x < 0 || y < 0 || x > math.MaxInt32 || y > math.MaxInt32 ||
				fmt.Sprintf("decoder%d.%d", x, y) != name {
				t.Fatalf("ValidDecoderName(%q) but the kernel never prints it", name)
			}
		}
		p, err := DeviceAttr(name, attr)
		if err != nil {
			if p != "" {
				t.Fatalf("DeviceAttr(%q, %q) = %q with %v", name, attr, p, err)
			}
			return
		}
		if p != "bus/cxl/devices/"+name+"/"+attr || strings.Count(p, "/") != 4 || strings.Contains(p, "..") ||
			strings.ContainsAny(p, "\x00\n ") || path.Clean(p) != p {
			t.Fatalf("DeviceAttr(%q, %q) = %q", name, attr, p)
		}
	})
}
