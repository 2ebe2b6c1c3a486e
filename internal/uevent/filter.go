package uevent

import "bytes"

// Filter decides from a message's SUBSYSTEM, DEVTYPE, DEVPATH and DRIVER
// (empty when absent) whether the event is delivered. The slices point into
// the receive buffer: a filter must not keep them. Filters run on every
// kernel message, so they should not allocate.
type Filter func(subsystem, devType, devPath, driver []byte) bool

// DefaultFilter keeps the events the daemon acts on: the cxl, nd and dax
// buses, memory blocks (a region's memory going online or offline), and the platform device of the cxl_acpi root (ACPI0017), whose
// unbind tears the whole CXL tree down.
func DefaultFilter(subsystem, devType, devPath, driver []byte) bool {
	switch string(subsystem) {
	case "cxl", "nd", "dax", "memory":
		return true
	case "platform":
		// The unbind of ACPI0017:00 carries no DRIVER; its DEVPATH names it.
		return string(driver) == "cxl_acpi" || bytes.Contains(devPath, []byte("/ACPI0017:"))
	}
	return false
}

// AllEvents keeps every kernel event.
func AllEvents(subsystem, devType, devPath, driver []byte) bool { return true }
