package metrics

import (
	"errors"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/devname"
	"github.com/cxlregion/cxlregiond/internal/guard"
	"github.com/cxlregion/cxlregiond/internal/region"
	"github.com/cxlregion/cxlregiond/internal/uevent"
)

// labelOther stands for every value outside a label's fixed set, so that a
// new kernel, a bug or a hostile input can add one series at most.
const labelOther = "other"

var (
	operations = []string{"create", "delete", "enable", "disable"}

	results = []region.Result{
		region.ResultOK, region.ResultNotFound, region.ResultBusy, region.ResultFrozen,
		region.ResultInvalid, region.ResultTimeout, region.ResultKernelError,
		region.ResultCanceled, region.ResultError,
	}

	// The attributes the daemon writes (docs/kernel.md#config-order);
	// targetN is folded into "target".
	attributes = []string{
		"create_pmem_region", "create_ram_region", "delete_region",
		"uuid", "size", "interleave_ways", "interleave_granularity", "commit", "target",
		"mode", "dpa_size", "bind", "unbind", "state",
	}

	// Zones of online memory blocks (valid_zones of an online block).
	memoryZones = []string{"movable", "normal"}

	ueventActions = []uevent.Action{
		uevent.Add, uevent.Remove, uevent.Change, uevent.Move,
		uevent.Online, uevent.Offline, uevent.Bind, uevent.Unbind,
	}

	rescanReasons = []string{"startup", "overflow", "gap", "request", "periodic", "thaw"}
	// Rescans whose reason says uevents were lost.
	resyncReasons = []string{"overflow", "gap"}

	// What needed the journal when it failed (region.Event.Reason of a
	// JournalFailed event).
	journalOperations = []string{"create", "delete", "recover", "generation", "close"}

	regionStates = []region.State{region.StateConfiguring, region.StateCommitted, region.StateEnabled, region.StateDeleting}
	regionTypes  = []string{"pmem", "ram"}

	// The guard's own bounded vocabulary (guard.Kind.String, guard.Result*).
	guardKinds = []string{
		guard.KindDelete.String(), guard.KindCreate.String(), guard.KindRegionDriver.String(),
		guard.KindACPIDriver.String(), guard.KindPortDriver.String(),
		guard.KindMemoryBlock.String(), guard.KindDaxDriver.String(),
	}
	guardResults = []string{guard.ResultAllowed, guard.ResultWaited, guard.ResultPassed, guard.ResultRefused}
)

// oneOf returns v when it is in set, labelOther otherwise.
func oneOf[T ~string](v T, set []T) string {
	for _, s := range set {
		if v == s {
			return string(v)
		}
	}
	return labelOther
}

// attributeLabel reduces a written path ("bus/cxl/devices/region3/target1",
// "bus/cxl/drivers/cxl_region/bind") to the attribute's base name.
func attributeLabel(attr string) string {
	base := path.Base(attr)
	if n, ok := strings.CutPrefix(base, "target"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		base = "target"
	}
	return oneOf(base, attributes)
}

// zoneLabel maps an online block's valid_zones (Movable, Normal) to the
// zone label.
func zoneLabel(validZones string) string {
	return oneOf(strings.ToLower(strings.TrimSpace(validZones)), memoryZones)
}

// writeResultLabel is "ok", the errno's name ("EBUSY"), or "error" for a
// failure that carries no errno. Errno names are a fixed table, so the label
// stays bounded whatever the kernel returns.
func writeResultLabel(err error) string {
	if err == nil {
		return "ok"
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		if name := unix.ErrnoName(errno); name != "" {
			return name
		}
	}
	return "error"
}

// rootDecoderLabel passes a root decoder's name through: the set is the
// host's CXL windows. A name that is not a decoder name cannot come from a
// scan, and is folded rather than trusted.
func rootDecoderLabel(name string) string {
	if devname.IsDecoder(name) {
		return name
	}
	return labelOther
}

// memdevLabel is a memdev's name, or "other" for anything that is not one:
// memdevs are bounded by the hardware.
func memdevLabel(name string) string {
	if devname.IsMemdev(name) {
		return name
	}
	return labelOther
}
