package api

// The JSON shapes cxlregionctl prints. Field names follow `cxl list -R`
// (ndctl) where the meaning is the same, so scripts written for cxl list
// keep working; fields cxl list does not have are the daemon's own.

// Region is one region (`cxlregionctl list --json`, `info --json`).
type Region struct {
	Region                string `json:"region"`
	Resource              uint64 `json:"resource,omitempty"` // absent while no HPA is allocated
	Size                  uint64 `json:"size"`
	Type                  string `json:"type"` // pmem or ram
	InterleaveWays        uint32 `json:"interleave_ways"`
	InterleaveGranularity uint32 `json:"interleave_granularity"`
	DecodeState           string `json:"decode_state,omitempty"` // commit or reset; absent while deleting
	// State is cxl's: "disabled" while the region is not bound to the
	// cxl_region driver, absent when it is (cxl list prints it only for a
	// disabled region).
	State    string    `json:"state,omitempty"`
	UUID     string    `json:"uuid,omitempty"` // absent for ram
	Mappings []Mapping `json:"mappings"`

	RootDecoder string `json:"root_decoder"`
	Generation  uint64 `json:"generation"`
	Origin      string `json:"origin"`    // daemon, kernel, foreign or unknown
	Lifecycle   string `json:"lifecycle"` // the daemon's: configuring, committed, enabled or deleting
	Settled     bool   `json:"settled"`

	// The region's memory, in `daxctl list`'s names: mode of its dax
	// device (system-ram or devdax), the node it is onlined to, its
	// memory blocks and how many are online, all online ones movable.
	Mode              string `json:"mode,omitempty"`
	TargetNode        *int32 `json:"target_node,omitempty"` // absent when none
	TotalMemblocks    uint32 `json:"total_memblocks"`
	OnlineMemblocks   uint32 `json:"online_memblocks"`
	OnlineMemoryBytes uint64 `json:"online_memory_bytes"`
	Movable           bool   `json:"movable"`
}

// Mapping is one interleave position of a region, as in `cxl list -R -T`.
type Mapping struct {
	Position int    `json:"position"`
	Memdev   string `json:"memdev"`
	Decoder  string `json:"decoder"`
}

// RootDecoder is one root decoder (a CXL window) and its writer; names
// follow `cxl list -D`.
type RootDecoder struct {
	Decoder               string   `json:"decoder"`
	Port                  string   `json:"port"`
	Size                  uint64   `json:"size"`
	MaxAvailableExtent    uint64   `json:"max_available_extent"`
	PmemCapable           bool     `json:"pmem_capable"`
	VolatileCapable       bool     `json:"volatile_capable"`
	InterleaveWays        uint32   `json:"interleave_ways"`
	InterleaveGranularity uint32   `json:"interleave_granularity"`
	Targets               []string `json:"targets"`
	Frozen                bool     `json:"frozen"`
	FrozenReason          string   `json:"frozen_reason,omitempty"`
	QueueDepth            uint32   `json:"queue_depth"`
}

// Status is the daemon's state (`cxlregionctl status --json`).
type Status struct {
	Version        string        `json:"version"`
	GuardActive    bool          `json:"guard_active"`
	GuardQueue     uint32        `json:"guard_queue_depth"`
	Simulated      bool          `json:"simulated"`
	KernelFeatures []string      `json:"kernel_features"`
	RootDecoders   []RootDecoder `json:"root_decoders"`
	Regions        int           `json:"regions"`
	Memdevs        []Memdev      `json:"memdevs"`
}

// Job is a long operation followed through its Job object.
type Job struct {
	Operation string   `json:"operation"`
	Objects   []string `json:"objects"`
	Progress  float64  `json:"progress"`
	Finished  bool     `json:"finished"`
	Success   bool     `json:"success"`
	ErrorName string   `json:"error_name,omitempty"`
	Message   string   `json:"message,omitempty"`
}

// Event kinds of `cxlregionctl monitor`.
const (
	EventRegionAdded        = "region_added"
	EventRegionChanged      = "region_changed"
	EventRegionRemoved      = "region_removed"
	EventRootDecoderAdded   = "root_decoder_added"
	EventRootDecoderChanged = "root_decoder_changed"
	EventRootDecoderRemoved = "root_decoder_removed"
	EventJobAdded           = "job_added"
	EventJobCompleted       = "job_completed"
	EventJobRemoved         = "job_removed"
	EventManagerChanged     = "manager_changed"
)

// Event is one line of `cxlregionctl monitor --json`. Exactly one of
// Region, RootDecoder, Job is set for the kinds that concern one; Changed
// lists the property names of a *_changed event.
type Event struct {
	Time        string       `json:"time"` // RFC 3339 with nanoseconds
	Event       string       `json:"event"`
	Object      string       `json:"object"` // D-Bus object path
	Changed     []string     `json:"changed,omitempty"`
	Region      *Region      `json:"region,omitempty"`
	RootDecoder *RootDecoder `json:"root_decoder,omitempty"`
	Job         *Job         `json:"job,omitempty"`
}

// Memdev is one memdev's device capacity as the kernel hands it out
// (`cxlregionctl status --json`, `info memN --json`). Stranded capacity is
// allocated to endpoint decoders whose regions were deleted below another
// region: the kernel frees a device's capacity only from the top, and the
// daemon does once the regions above it are deleted.
type Memdev struct {
	Memdev    string            `json:"memdev"`
	Total     uint64            `json:"total"`
	Allocated uint64            `json:"allocated"`
	Free      uint64            `json:"free"`
	Stranded  uint64            `json:"stranded"`
	Decoders  []EndpointDecoder `json:"decoders"`
}

// EndpointDecoder is one endpoint decoder's allocation; dpa_size and mode
// as in `cxl list -D`.
type EndpointDecoder struct {
	Decoder  string `json:"decoder"`
	Memdev   string `json:"memdev"`
	Mode     string `json:"mode"`
	DPASize  uint64 `json:"dpa_size"`
	Region   string `json:"region,omitempty"`
	Stranded bool   `json:"stranded"`
}
