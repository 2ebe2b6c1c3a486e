package api

import "time"

// Option keys of the a{sv} dictionary every method takes last. Each key has
// exactly one accepted D-Bus type (OptionTypes); any other type, or a key a
// method does not know, is refused with InvalidArgument before anything
// else happens.
const (
	// OptTimeout (d): seconds the operation may take in all, queueing and
	// waiting for the kernel to settle included; 0 < timeout ≤ MaxTimeout.
	// Absent: the daemon's default timeout.
	OptTimeout = "timeout"
	// OptNoWait (b): return a Job object path at once instead of waiting.
	OptNoWait = "no_wait"
	// OptNoUserInteraction (b): do not let polkit ask the user for a
	// password (udisks2's key).
	OptNoUserInteraction = "auth.no_user_interaction"

	// OptGeneration (t): delete only this generation of the region; a
	// generation that is gone is NotFound, so a request can never hit a
	// newer region that reuses the name. Absent: the current generation.
	OptGeneration = "generation"

	// Create options.
	OptType        = "type"        // s: "pmem" (default) or "ram"
	OptSize        = "size"        // t: bytes, a multiple of 256 MiB × ways; default the largest the targets can give
	OptWays        = "ways"        // u: interleave ways; default from targets or the window
	OptGranularity = "granularity" // u: interleave granularity in bytes; default the window's
	OptTargets     = "targets"     // as: endpoint decoders or memdevs (memN) by position; default picked
	OptUUID        = "uuid"        // s: pmem region uuid; default generated
	OptNoBind      = "no_bind"     // b: leave the region committed but not bound

	// OptOffline (b): when the region's memory is online as System RAM,
	// offline its memory blocks first (their pages migrate to other
	// nodes; progress on the Job) instead of refusing with Busy. A block
	// that cannot be offlined puts the others back online and the
	// operation fails. Delete and Disable.
	OptOffline = "offline"
)

// OptionTypes is the one D-Bus signature each option key accepts.
var OptionTypes = map[string]string{
	OptTimeout:           "d",
	OptNoWait:            "b",
	OptNoUserInteraction: "b",
	OptGeneration:        "t",
	OptType:              "s",
	OptSize:              "t",
	OptWays:              "u",
	OptGranularity:       "u",
	OptTargets:           "as",
	OptUUID:              "s",
	OptNoBind:            "b",
	OptOffline:           "b",
}

// Which options each method accepts.
var (
	commonOptions = []string{OptTimeout, OptNoWait, OptNoUserInteraction}
	// CreateOptions are the keys of CreateRegion.
	CreateOptions = append([]string{OptType, OptSize, OptWays, OptGranularity, OptTargets, OptUUID, OptNoBind}, commonOptions...)
	// DeleteOptions are the keys of DeleteRegion and Region.Delete.
	DeleteOptions = append([]string{OptGeneration, OptOffline}, commonOptions...)
	// BindOptions are the keys of Region.Enable.
	BindOptions = commonOptions
	// DisableOptions are the keys of Region.Disable.
	DisableOptions = append([]string{OptOffline}, commonOptions...)
	// CancelOptions are the keys of Job.Cancel, as udisks2's Job.Cancel.
	CancelOptions = []string{OptNoUserInteraction}
)

// MaxTimeout bounds the timeout option: a day is longer than any region
// operation may sensibly wait.
const MaxTimeout = 24 * time.Hour

// DefaultRegionType is the type CreateRegion uses when the type option is
// absent, as `cxl create-region` does.
const DefaultRegionType = "pmem"
