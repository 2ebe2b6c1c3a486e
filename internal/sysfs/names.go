package sysfs

import (
	"fmt"
	"regexp"

	"golang.org/x/sys/unix"
)

// Driver files the daemon writes device names to. Each exists while its
// driver is registered.
const (
	RegionBindPath   = "bus/cxl/drivers/cxl_region/bind"
	RegionUnbindPath = "bus/cxl/drivers/cxl_region/unbind"
	ACPIBindPath     = "bus/platform/drivers/cxl_acpi/bind"
	ACPIUnbindPath   = "bus/platform/drivers/cxl_acpi/unbind"
	PortUnbindPath   = "bus/cxl/drivers/cxl_port/unbind"
)

// devicesDir is where the cxl bus lists its devices, one symlink each.
const devicesDir = "bus/cxl/devices"

// The kernel names devices "%s%d" from non-negative ints, so an id never
// has a leading zero and has at most 10 digits. Refusing "region01" keeps
// one region from having two names in the daemon's maps; the kernel would
// answer ENODEV to it anyway.
const id = `(?:0|[1-9][0-9]{0,9})`

var (
	regionName  = regexp.MustCompile(`^region` + id + `$`)
	decoderName = regexp.MustCompile(`^decoder` + id + `\.` + id + `$`)
	memdevName  = regexp.MustCompile(`^mem` + id + `$`)
	deviceName  = regexp.MustCompile(`^(?:(?:root|port|endpoint|mem|region|pmem_region|dax_region)` + id +
		`|decoder` + id + `\.` + id + `)$`)
	attrName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// ValidRegionName reports whether s is a region name the kernel could have
// given (region0, region12).
func ValidRegionName(s string) bool { return regionName.MatchString(s) }

// ValidMemdevName reports whether s is a memdev name (mem0, mem12).
func ValidMemdevName(s string) bool { return memdevName.MatchString(s) }

// ValidDecoderName reports whether s is a decoder name (decoder0.0,
// decoder12.3).
func ValidDecoderName(s string) bool { return decoderName.MatchString(s) }

// validDeviceName reports whether s names a cxl device the daemon reads or
// writes: a port, decoder, memdev or region.
func validDeviceName(s string) bool { return deviceName.MatchString(s) }

// DeviceAttr returns the path of attribute attr of cxl device dev
// ("bus/cxl/devices/region0/size"). It is the only way writers build a
// device path, so a name that did not pass validation never reaches sysfs.
// The error wraps unix.EINVAL.
func DeviceAttr(dev, attr string) (string, error) {
	if !validDeviceName(dev) {
		return "", fmt.Errorf("cxl device name %q: %w", dev, unix.EINVAL)
	}
	if !attrName.MatchString(attr) {
		return "", fmt.Errorf("attribute name %q of %s: %w", attr, dev, unix.EINVAL)
	}
	return devicesDir + "/" + dev + "/" + attr, nil
}
