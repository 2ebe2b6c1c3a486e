package cxlsim

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The kernel's parsers of written values (lib/kstrtox.c, lib/uuid.c).

// kstrtoull parses like kstrtoull(s, 0, &v): base from the prefix (0x
// hex, 0 octal, else decimal), an optional leading '+', one optional
// trailing newline, nothing else. Overflow is ERANGE, anything else
// EINVAL.
func kstrtoull(data []byte) (uint64, unix.Errno) {
	s := strings.TrimSuffix(string(data), "\n")
	s = strings.TrimPrefix(s, "+")
	base := 10
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" || strings.ContainsAny(s, "_+-") {
		return 0, unix.EINVAL
	}
	v, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, unix.ERANGE
		}
		return 0, unix.EINVAL
	}
	return v, 0
}

// kstrtouint is kstrtoull limited to 32 bits.
func kstrtouint(data []byte) (uint32, unix.Errno) {
	v, errno := kstrtoull(data)
	if errno != 0 {
		return 0, errno
	}
	if v > 0xffffffff {
		return 0, unix.ERANGE
	}
	return uint32(v), 0
}

// kstrtoint parses a signed 32-bit value.
func kstrtoint(data []byte) (int, unix.Errno) {
	s := strings.TrimSuffix(string(data), "\n")
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	v, errno := kstrtoull([]byte(s))
	if errno != 0 {
		return 0, errno
	}
	if (!neg && v > 0x7fffffff) || (neg && v > 0x80000000) {
		return 0, unix.ERANGE
	}
	if neg {
		return -int(v), 0
	}
	return int(v), 0
}

// kstrtobool accepts 1/y/Y/t/T/on and 0/n/N/f/F/off by their first
// characters, as the kernel does.
func kstrtobool(data []byte) (bool, unix.Errno) {
	s := string(data)
	if s == "" {
		return false, unix.EINVAL
	}
	switch s[0] {
	case 'y', 'Y', 't', 'T', '1':
		return true, 0
	case 'n', 'N', 'f', 'F', '0':
		return false, 0
	case 'o', 'O':
		if len(s) > 1 {
			switch s[1] {
			case 'n', 'N':
				return true, 0
			case 'f', 'F':
				return false, 0
			}
		}
	}
	return false, unix.EINVAL
}

// parseUUID is uuid_parse on the first 36 bytes: 8-4-4-4-12 hex digits.
// It returns the uuid in the lower-case form %pUb prints.
func parseUUID(s string) (string, bool) {
	if len(s) < 36 {
		return "", false
	}
	s = s[:36]
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			if !isHex(c) {
				return "", false
			}
		}
	}
	return strings.ToLower(s), true
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// sscanfRegion is sscanf(buf, "region%d\n", &id) == 1.
func sscanfRegion(data []byte) (int, bool) {
	s, ok := strings.CutPrefix(string(data), "region")
	if !ok {
		return 0, false
	}
	s = strings.TrimLeft(s, " \t\n\v\f\r") // %d skips white space
	end := 0
	if end < len(s) && (s[end] == '-' || s[end] == '+') {
		end++
	}
	start := end
	for end < len(s) && '0' <= s[end] && s[end] <= '9' {
		end++
	}
	if end == start {
		return 0, false
	}
	v, err := strconv.ParseInt(s[:end], 10, 32)
	if err != nil {
		return 0, false
	}
	return int(v), true
}
