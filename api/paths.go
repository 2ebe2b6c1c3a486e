package api

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"
)

// Kernel device ids are non-negative ints printed with %d: no sign, no
// leading zero, at most 10 digits.
const kernelID = `(?:0|[1-9][0-9]{0,9})`

var (
	regionNameRE  = regexp.MustCompile(`^region` + kernelID + `$`)
	decoderNameRE = regexp.MustCompile(`^decoder` + kernelID + `\.` + kernelID + `$`)
	memdevNameRE  = regexp.MustCompile(`^mem` + kernelID + `$`)
	// Object path elements allow only [A-Za-z0-9_], so decoder0.0 becomes
	// decoder0_0.
	decoderElemRE = regexp.MustCompile(`^decoder` + kernelID + `_` + kernelID + `$`)
	jobElemRE     = regexp.MustCompile(`^[1-9][0-9]{0,19}$`)
)

// RegionPath returns the object path of a region, or false when name is not
// a region name: a path is never built from an unchecked string.
func RegionPath(name string) (dbus.ObjectPath, bool) {
	if !regionNameRE.MatchString(name) {
		return "", false
	}
	return dbus.ObjectPath(RegionsPath + "/" + name), true
}

// RegionName returns the region name of a region object path.
func RegionName(p dbus.ObjectPath) (string, bool) {
	name, ok := strings.CutPrefix(string(p), RegionsPath+"/")
	if !ok || !regionNameRE.MatchString(name) {
		return "", false
	}
	return name, true
}

// RootDecoderPath returns the object path of a root decoder, or false when
// name is not a decoder name.
func RootDecoderPath(name string) (dbus.ObjectPath, bool) {
	if !decoderNameRE.MatchString(name) {
		return "", false
	}
	return dbus.ObjectPath(RootDecodersPath + "/" + strings.Replace(name, ".", "_", 1)), true
}

// RootDecoderName returns the decoder name of a root decoder object path.
func RootDecoderName(p dbus.ObjectPath) (string, bool) {
	elem, ok := strings.CutPrefix(string(p), RootDecodersPath+"/")
	if !ok || !decoderElemRE.MatchString(elem) {
		return "", false
	}
	return strings.Replace(elem, "_", ".", 1), true
}

// JobPath returns the object path of job number id (ids start at 1).
func JobPath(id uint64) dbus.ObjectPath {
	return dbus.ObjectPath(JobsPath + "/" + strconv.FormatUint(id, 10))
}

// IsJobPath reports whether p is a job object path.
func IsJobPath(p dbus.ObjectPath) bool {
	elem, ok := strings.CutPrefix(string(p), JobsPath+"/")
	return ok && jobElemRE.MatchString(elem)
}

// ValidRegionName reports whether s is a region name the kernel could have
// given (region0, region12).
func ValidRegionName(s string) bool { return regionNameRE.MatchString(s) }

// ValidMemdevName reports whether s is a memdev name (mem0, mem12).
func ValidMemdevName(s string) bool { return memdevNameRE.MatchString(s) }

// ValidDecoderName reports whether s is a decoder name (decoder0.0).
func ValidDecoderName(s string) bool { return decoderNameRE.MatchString(s) }
