package sysfs

import (
	"errors"
	"slices"
	"strconv"
	"testing"
)

func TestParseU64(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr error
	}{
		{"0x0\n", 0, nil},                         // %#llx of zero: not "0"
		{"0x390000000\n", 0x390000000, nil},       // %#llx
		{"0x0000000010000000\n", 0x10000000, nil}, // %pa, zero padded
		{"0xffffffffffffffff\n", 1<<64 - 1, nil},  // resource while unallocated
		{"268435456\n", 268435456, nil},           // %llu
		{" 0x10 \n", 16, nil},
		{"", 0, strconv.ErrSyntax},
		{"0x", 0, strconv.ErrSyntax},
		{"-1", 0, strconv.ErrSyntax},
		{"12abc", 0, strconv.ErrSyntax},
		{"0x10000000000000000", 0, strconv.ErrRange},
	}
	for _, tt := range tests {
		got, err := parseU64(tt.in)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && got != tt.want) {
			t.Errorf("parseU64(%q) = %#x, %v; want %#x, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseInt(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"256\n", 256, false},
		{"-1\n", -1, false}, // numa_node, qos_class "invalid"
		{"0", 0, false},
		{"0x10", 0, true}, // %d never prints hex
		{"", 0, true},
		{"1.5", 0, true},
	}
	for _, tt := range tests {
		got, err := parseInt(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseInt(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseBool(t *testing.T) {
	tests := []struct {
		in      string
		want    bool
		wantErr bool
	}{
		{"1\n", true, false},
		{"0\n", false, false},
		{"y", false, true}, // kstrtobool input, never printed
		{"2", false, true},
		{"", false, true},
	}
	for _, tt := range tests {
		got, err := parseBool(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseBool(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseIntList(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"12\n", []int{12}, false},
		{"0,1\n", []int{0, 1}, false},
		{"\n", nil, false},
		{"0,,1", nil, true},
		{"0, 1", nil, true},
		{"a", nil, true},
	}
	for _, tt := range tests {
		got, err := parseIntList(tt.in)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("parseIntList(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseUUID(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"a6d0c8ec-a2fb-4202-a662-84d58654eeef\n", "a6d0c8ec-a2fb-4202-a662-84d58654eeef", false},
		{"A6D0C8EC-A2FB-4202-A662-84D58654EEEF", "a6d0c8ec-a2fb-4202-a662-84d58654eeef", false},
		{"00000000-0000-0000-0000-000000000000\n", "", false}, // unset pmem uuid
		{"\n", "", false}, // ram region
		{"a6d0c8ec-a2fb-4202-a662-84d58654eee\n", "", true}, // truncated
		{"a6d0c8ec-a2fb-4202-a662-84d58654eeeff", "", true}, // one digit too many
		{"a6d0c8eca-2fb-4202-a662-84d58654eeef", "", true},  // dash misplaced
		{"g6d0c8ec-a2fb-4202-a662-84d58654eeef", "", true},  // not hex
		{"{a6d0c8ec-a2fb-4202-a662-84d58654eeef}", "", true},
	}
	for _, tt := range tests {
		got, err := parseUUID(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseUUID(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseErrorMessage(t *testing.T) {
	err := error(&ParseError{File: "bus/cxl/devices/region0/size", Value: "0xZZ", Err: strconv.ErrSyntax})
	want := `parse bus/cxl/devices/region0/size: value "0xZZ": invalid syntax`
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if !errors.Is(err, strconv.ErrSyntax) {
		t.Error("ParseError does not unwrap to its reason")
	}
}

func TestNaturalCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"region2", "region10", -1},
		{"region10", "region2", 1},
		{"decoder2.0", "decoder10.0", -1},
		{"decoder2.10", "decoder2.9", 1},
		{"region3", "region3", 0},
		{"port1", "root0", -1},
		{"region", "region0", -1},
		{"region99999999999999999999", "region100000000000000000000", -1}, // beyond uint64
	}
	for _, tt := range tests {
		if got := CompareNames(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareNames(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
