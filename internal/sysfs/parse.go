package sysfs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ParseError is an attribute whose content is not in the kernel's format.
// It names the file and the value, so a report from a host shows what the
// kernel (or a broken simulator) actually printed.
type ParseError struct {
	File  string // path relative to the sysfs root
	Value string // the content read, one trailing newline removed
	Err   error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("parse %s: value %q: %v", e.File, e.Value, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Reasons a value is rejected; a *ParseError wraps one of these or one of
// strconv.ErrSyntax and strconv.ErrRange.
var (
	errNotBool       = errors.New("not 0 or 1")
	errNotUUID       = errors.New("not a uuid (%pUb)")
	errNotDeviceName = errors.New("not a cxl device name")
)

// The kernel prints numbers as %#llx ("0x0", "0x390000000"), %pa
// ("0x0000000010000000"), %d and %u. ParseUint with base 0 reads the hex
// forms padded or not, so one parser serves every unsigned attribute; a
// field never needs to know which of the two the kernel used.
func parseU64(s string) (uint64, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 0, 64)
	return v, numErr(err)
}

// parseInt reads a %d attribute. Some are negative (numa_node -1,
// qos_class -1 for "invalid"), so it is signed and decimal only.
func parseInt(s string) (int, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 0)
	return int(v), numErr(err)
}

// numErr drops strconv's own "parsing ...: " wrapper: ParseError already
// names the value.
func numErr(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}

// parseBool reads the kernel's sysfs_emit("%d", flag) booleans. Only 0 and
// 1 are accepted: anything else means the file is not the one we think.
func parseBool(s string) (bool, error) {
	switch strings.TrimSpace(s) {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, errNotBool
}

// parseIntList reads a comma-separated list of decimal ids (target_list:
// "12", "0,1"). An empty value is an empty list.
func parseIntList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	fields := strings.Split(s, ",")
	out := make([]int, len(fields))
	for i, f := range fields {
		v, err := strconv.ParseInt(f, 10, 0)
		if err != nil {
			return nil, numErr(err)
		}
		out[i] = int(v)
	}
	return out, nil
}

const nullUUID = "00000000-0000-0000-0000-000000000000"

// parseUUID reads a %pUb uuid. The kernel shows the null uuid for a pmem
// region whose uuid is unset and an empty line for ram regions; both mean
// "no uuid" and give "".
func parseUUID(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	if !isUUID(s) {
		return "", errNotUUID
	}
	s = strings.ToLower(s)
	if s == nullUUID {
		return "", nil
	}
	return s, nil
}

// isUUID reports whether s is 8-4-4-4-12 hex digits, the only form %pUb
// prints and the only form uuid_store accepts.
func isUUID(s string) bool {
	if len(s) != len(nullUUID) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHexDigit(c) {
				return false
			}
		}
	}
	return true
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
