package api

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/internal/devname"
)

// A job's path element is its number: 1 and up, no leading zero.
var jobElemRE = regexp.MustCompile(`^[1-9][0-9]{0,19}$`)

// RegionPath returns the object path of a region, or false when name is not
// a region name: a path is never built from an unchecked string.
func RegionPath(name string) (dbus.ObjectPath, bool) {
	if !devname.IsRegion(name) {
		return "", false
	}
	return dbus.ObjectPath(RegionsPath + "/" + name), true
}

// RegionName returns the region name of a region object path.
func RegionName(p dbus.ObjectPath) (string, bool) {
	name, ok := strings.CutPrefix(string(p), RegionsPath+"/")
	if !ok || !devname.IsRegion(name) {
		return "", false
	}
	return name, true
}

// RootDecoderPath returns the object path of a root decoder, or false when
// name is not a decoder name.
func RootDecoderPath(name string) (dbus.ObjectPath, bool) {
	if !devname.IsDecoder(name) {
		return "", false
	}
	return dbus.ObjectPath(RootDecodersPath + "/" + strings.Replace(name, ".", "_", 1)), true
}

// RootDecoderName returns the decoder name of a root decoder object path.
// Object path elements allow only [A-Za-z0-9_], so the path of decoder0.0
// ends in decoder0_0.
func RootDecoderName(p dbus.ObjectPath) (string, bool) {
	elem, ok := strings.CutPrefix(string(p), RootDecodersPath+"/")
	if !ok || strings.Contains(elem, ".") {
		return "", false
	}
	name := strings.Replace(elem, "_", ".", 1)
	if !devname.IsDecoder(name) {
		return "", false
	}
	return name, true
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
