package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// sizeRE: a decimal number, optionally with a binary unit (K, M, G, T, any
// case, optionally followed by B or iB), or with B alone.
var sizeRE = regexp.MustCompile(`(?i)^([0-9]+)(?:([kmgt])(?:i?b)?|b)?$`)

// parseSize reads a byte count: decimal (268435456), hexadecimal
// (0x10000000), or a number with a binary unit (256M, 256MiB, 1G).
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	if hex, ok := strings.CutPrefix(strings.ToLower(t), "0x"); ok {
		n, err := strconv.ParseUint(hex, 16, 64)
		if err != nil {
			return 0, fmt.Errorf("size %q: not a 64-bit hexadecimal number", s)
		}
		return n, nil
	}
	m := sizeRE.FindStringSubmatch(t)
	if m == nil {
		return 0, fmt.Errorf("size %q: want bytes (268435456), hexadecimal (0x10000000) or a number with K, M, G or T (256M)", s)
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40}[strings.ToLower(m[2])]
	if shift > 0 && n > (^uint64(0))>>shift {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n << shift, nil
}

// formatSize prints bytes with the largest binary unit that divides them
// exactly: 256 MiB, 4 GiB, 4097 B.
func formatSize(n uint64) string {
	units := []struct {
		shift uint
		name  string
	}{{40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}}
	for _, u := range units {
		if n != 0 && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d %s", n>>u.shift, u.name)
		}
	}
	return fmt.Sprintf("%d B", n)
}
