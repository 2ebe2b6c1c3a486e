package main

import "testing"

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"256M", 256 << 20, true},
		{"256m", 256 << 20, true},
		{"256MiB", 256 << 20, true},
		{"256MB", 256 << 20, true},
		{"1G", 1 << 30, true},
		{"2T", 2 << 40, true},
		{"4k", 4096, true},
		{"268435456", 268435456, true},
		{"268435456B", 268435456, true},
		{"0x10000000", 0x10000000, true},
		{"0X10000000", 0x10000000, true},
		{"0", 0, true},
		{"", 0, false},
		{"M", 0, false},
		{"-1", 0, false},
		{"1.5G", 0, false},
		{"256 M", 0, false},
		{"256iB", 0, false},
		{"0x", 0, false},
		{"0xfffffffffffffffff", 0, false},
		{"99999999999999999999", 0, false},
		{"17179869184T", 0, false},
		{"16777215T", 16777215 << 40, true},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[uint64]string{
		0: "0 B", 4097: "4097 B", 4096: "4 KiB", 256 << 20: "256 MiB", 1 << 30: "1 GiB", 3 << 40: "3 TiB", (1 << 30) + (256 << 20): "1280 MiB",
	} {
		if got := formatSize(in); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", in, got, want)
		}
	}
}
