package sysfs

import (
	"cmp"
	"slices"
)

// CompareNames orders device names as people do: region2 before
// region10, decoder2.0 before decoder10.0.
func CompareNames(a, b string) int {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			na, ra := leadingDigits(a)
			nb, rb := leadingDigits(b)
			// Without leading zeros, the longer run is the larger number;
			// comparing lengths first never overflows.
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), cmp.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = ra, rb
			continue
		}
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// leadingDigits splits s into its leading run of digits, leading zeros
// dropped, and the rest.
func leadingDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	digits = s[:i]
	for len(digits) > 1 && digits[0] == '0' {
		digits = digits[1:]
	}
	return digits, s[i:]
}

// sortByName sorts devices by name in natural order.
func sortByName[T any](s []T, name func(T) string) {
	slices.SortFunc(s, func(a, b T) int { return CompareNames(name(a), name(b)) })
}
