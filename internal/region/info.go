package region

import (
	"time"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// Origin says who made a region.
type Origin string

const (
	OriginDaemon  Origin = "daemon"  // created through this daemon
	OriginKernel  Origin = "kernel"  // found committed at start: firmware or auto-assembly
	OriginForeign Origin = "foreign" // made by another tool behind the daemon's back
	// OriginUnknown is a region found at startup when the state
	// directory's record of what the daemon made could not be read: it may
	// be the daemon's or the kernel's. It keeps the foreign settle rule.
	OriginUnknown Origin = "unknown"
)

// State is a region's lifecycle state as the daemon sees it.
type State string

const (
	StateConfiguring State = "configuring" // created, not committed
	StateCommitted   State = "committed"   // decoders committed, no driver
	StateEnabled     State = "enabled"     // bound to cxl_region
	StateDeleting    State = "deleting"    // a delete is in flight
)

// RegionInfo is a region as the engine knows it.
type RegionInfo struct {
	Name                  string
	Generation            uint64 // changes whenever the kernel reuses Name
	RootDecoder           string
	Type                  string // pmem or ram
	Size                  uint64
	Resource              uint64 // 0 while no HPA is allocated
	UUID                  string // "" for ram
	InterleaveWays        int
	InterleaveGranularity int
	Targets               []string // endpoint decoders by position, "" where empty
	Memdevs               []string // memdev behind each target, "" where empty
	State                 State
	Origin                Origin
	// Settled reports that the kernel's asynchronous work around the region
	// is finished, so that it may be deleted.
	Settled bool
	// SettleCheckAt is when Settled turns true by time alone, if nothing
	// about the region changes before: the first of the settle rule's
	// deadlines (the settle window, the quiet time after bind) at which it
	// holds. Zero when Settled is true, or when only a change of the
	// region (a bind, its nd region's registration) can make it true. A
	// reader that shows Settled reads the model again then instead of
	// polling.
	SettleCheckAt time.Time
	// FirstSeen is when this generation was first observed.
	FirstSeen time.Time
	// Memory is what the region's memory is doing: its dax devices and
	// the memory blocks over its range. A region with an online block is
	// never torn down without the offline option.
	Memory sysfs.RegionMemory
}

// RootDecoderInfo is a root decoder (a CXL window) and its writer.
type RootDecoderInfo struct {
	Name                  string
	Port                  string
	CapPmem               bool
	CapRAM                bool
	Size                  uint64
	FreeCapacity          uint64 // largest free HPA extent
	InterleaveWays        int
	InterleaveGranularity int
	Targets               []string // host bridges
	Frozen                bool
	FrozenReason          string
	QueueDepth            int
}

// CreateRequest describes a region to create. Zero values choose defaults:
// Ways from len(Targets) or the root decoder's ways, Granularity from the
// root decoder, Targets picked from free endpoint decoders, UUID generated
// for pmem.
type CreateRequest struct {
	RootDecoder string
	Type        string // pmem or ram
	Size        uint64
	Ways        int
	Granularity int
	Targets     []string // endpoint decoders, by position
	UUID        string
	NoBind      bool
}

// DeleteRequest names a region to delete. Generation 0 means the current
// generation at the time the request is accepted.
type DeleteRequest struct {
	Name       string
	Generation uint64
	// Memory says what to do when the region's memory is online: refuse
	// (the zero value) or offline it first.
	Memory MemoryOptions
}
