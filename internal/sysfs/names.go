package sysfs

import (
	"fmt"
	"regexp"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/devname"
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

// attrName is an attribute file name: lower case, digits, underscores.
var attrName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// DeviceAttr returns the path of attribute attr of cxl device dev
// ("bus/cxl/devices/region0/size"). It is the only way writers build a
// device path, so a name that did not pass validation never reaches sysfs.
// The error wraps unix.EINVAL.
func DeviceAttr(dev, attr string) (string, error) {
	if !devname.IsDevice(dev) {
		return "", fmt.Errorf("cxl device name %q: %w", dev, unix.EINVAL)
	}
	if !attrName.MatchString(attr) {
		return "", fmt.Errorf("attribute name %q of %s: %w", attr, dev, unix.EINVAL)
	}
	return devicesDir + "/" + dev + "/" + attr, nil
}
