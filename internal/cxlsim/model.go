package cxlsim

// The model's state. Everything a restarted process needs is in exported
// (JSON) fields; runtime-only bookkeeping (references, devres, timers) is
// unexported and rebuilt on load.

// Region configuration states, in the kernel's order (enum cxl_config_state):
// code compares them with < and >=.
const (
	stateIdle = iota
	stateInterleaveActive
	stateActive
	stateResetPending
	stateCommit
)

const maxTargets = 16

type state struct {
	Profile   string   `json:"profile"`
	Topology  Topology `json:"topology"`
	ACPIBound bool     `json:"acpi_bound"`
	Seqnum    uint64   `json:"seqnum"`
	// IDs is the memregion IDA: every id in use (cached by a root decoder
	// or owned by a region not yet released).
	IDs          []int               `json:"ids"`
	RootDecoders []*rootDecoderState `json:"root_decoders"`
	Ports        []*portState        `json:"ports"` // host bridges, then endpoints
	Switch       []*switchDecState   `json:"switch_decoders"`
	Endpoint     []*epDecState       `json:"endpoint_decoders"`
	Memdevs      []*memdevState      `json:"memdevs"`
	Regions      []*regionState      `json:"regions"`
	RegionOrder  int                 `json:"region_order"`     // devres registration counter (LIFO teardown)
	Memory       *memoryState        `json:"memory,omitempty"` // nil until first used
	Warn         int                 `json:"warn"`
	Bug          int                 `json:"bug"`
	Writes       map[string]int      `json:"writes"`       // path -> count
	WriteValues  map[string]int      `json:"write_values"` // path + "\x00" + value -> count
}

type rootDecoderState struct {
	Name     string `json:"name"`
	Index    int    `json:"index"`
	CachedID int    `json:"cached_id"` // cxlrd->region_id; -1 while the root decoder is gone
}

type portState struct {
	Name      string `json:"name"`
	HB        int    `json:"hb"`     // host bridge index (for endpoints: the bridge above)
	Memdev    int    `json:"memdev"` // -1 for host bridge ports
	Present   bool   `json:"present"`
	Bound     bool   `json:"bound"`
	CommitEnd int    `json:"commit_end"` // port->commit_end, -1 when none
	HdmEnd    int    `json:"hdm_end"`    // port->hdm_end (endpoints), -1 when none
}

func (p *portState) endpoint() bool { return p.Memdev >= 0 }

type switchDecState struct {
	Name    string `json:"name"`
	Port    string `json:"port"`
	Index   int    `json:"index"`
	Region  string `json:"region"`
	Start   uint64 `json:"start"`
	Size    uint64 `json:"size"`
	Ways    int    `json:"ways"`
	Gran    int    `json:"gran"`
	Enabled bool   `json:"enabled"`
}

type dpaAlloc struct {
	Start uint64 `json:"start"`
	Size  uint64 `json:"size"`
	Skip  uint64 `json:"skip"`
	Mode  string `json:"mode"`
}

type epDecState struct {
	Name    string    `json:"name"`
	Port    string    `json:"port"`
	Index   int       `json:"index"`
	Memdev  int       `json:"memdev"`
	Mode    string    `json:"mode"` // none, ram, pmem
	DPA     *dpaAlloc `json:"dpa,omitempty"`
	Region  string    `json:"region"`
	Start   uint64    `json:"start"`
	Size    uint64    `json:"size"`
	Ways    int       `json:"ways"`
	Gran    int       `json:"gran"`
	Enabled bool      `json:"enabled"`
}

type memdevState struct {
	Name   string `json:"name"`
	Index  int    `json:"index"`
	Bound  bool   `json:"bound"` // cxl_mem
	Nvdimm bool   `json:"nvdimm"`
	// NvdimmBound: pmem<i> bound to cxl_nvdimm (and nmem<i> registered).
	NvdimmBound bool `json:"nvdimm_bound"`
}

type hpa struct {
	Start uint64 `json:"start"`
	Size  uint64 `json:"size"`
}

type regionState struct {
	ID          int                `json:"id"`
	Name        string             `json:"name"`
	RootDecoder string             `json:"root_decoder"`
	Mode        string             `json:"mode"` // pmem, ram
	UUID        string             `json:"uuid"` // "" = null uuid
	Ways        int                `json:"ways"`
	Gran        int                `json:"gran"`
	Res         *hpa               `json:"res,omitempty"`
	State       int                `json:"state"`
	Targets     [maxTargets]string `json:"targets"`
	NrTargets   int                `json:"nr_targets"`
	Bound       bool               `json:"bound"`
	Registered  bool               `json:"registered"`  // nd region (pmem) / dax device (ram) registered
	Kmem        bool               `json:"kmem"`        // the dax device is bound to kmem (System RAM)
	DaxUnbound  bool               `json:"dax_unbound"` // the dax device is bound to no driver
	Pending     bool               `json:"pending"`     // registration scheduled, not done
	Auto        bool               `json:"auto"`
	NeedsReset  bool               `json:"needs_reset"`
	Order       int                `json:"order"`
	// Assembling is set while AutoAssemble still builds the region;
	// AssemblyTargets is what it will attach.
	Assembling      bool     `json:"assembling"`
	AssemblyTargets []string `json:"assembly_targets,omitempty"`
	AssemblyRes     *hpa     `json:"assembly_res,omitempty"`

	// runtime only
	refs         int  // device references (device_initialize + lookups)
	action       bool // unregister_region devres action still registered on ACPI0017
	deleting     bool // a fixed kernel's delete_region_store holds it (ProfileFixed)
	unregistered bool // device_del done: lookups fail, stores give ENODEV
	stopRegister func() bool
}
