package sysfs

// Topology is one reading of /sys/bus/cxl/devices (and of the nd and dax
// objects below regions), decoded into typed values. Slices are sorted by
// name in natural order (decoder2.0 < decoder10.0, region2 < region10).
type Topology struct {
	Roots            []Root            // root0: the cxl_acpi root ports
	Ports            []Port            // portN: host bridges and switches
	Endpoints        []Port            // endpointN
	RootDecoders     []RootDecoder     // cxl_decoder_root
	SwitchDecoders   []SwitchDecoder   // cxl_decoder_switch (host bridges, switches)
	EndpointDecoders []EndpointDecoder // cxl_decoder_endpoint
	Memdevs          []Memdev          // cxl_memdev
	Regions          []Region          // cxl_region
}

// Root is a CXL root (root0), enumerated from the ACPI0017 platform device.
type Root struct {
	Name string // root0
	// Host is the platform device the root hangs off, e.g. "ACPI0017:00":
	// the name written to /sys/bus/platform/drivers/cxl_acpi/{bind,unbind}.
	Host string // from the link bus/cxl/devices/root0 -> ../../../devices/platform/ACPI0017:00/root0
	// Dports maps a dport id (the numbers in a root decoder's target_list)
	// to the host bridge port name that sits behind it (root0/dport12 ->
	// pci0000:0c, which is portN's uport); "" while no port below the
	// root has that uport.
	Dports map[int]string // root0/dportN links, portN/uport links
}

// Port is a host bridge, switch or endpoint port.
type Port struct {
	Name   string // port1, endpoint2
	Parent string // parent port or root name, from the device path
	Driver string // bound driver (cxl_port) or "" // <port>/driver link
	// DecodersCommitted is absent before v6.7.
	DecodersCommitted *int // <port>/decoders_committed
	// Uport is the device the port stands for: a host bridge's ACPI or PCI
	// device (ACPI0016:00 on 6.1, pci0000:0c on 6.12), an endpoint's
	// memdev (mem0). "" when the link is absent.
	Uport string // basename of the <port>/uport link
}

// RootDecoder is a CXL fixed memory window (CFMWS): regions are created
// under it and deleted through its delete_region file.
type RootDecoder struct {
	Name                  string  // decoderX.Y
	Port                  string  // root0
	Start                 *uint64 // start (0400: nil when unreadable)
	Size                  uint64  // size
	Locked                bool    // locked
	InterleaveWays        int     // interleave_ways
	InterleaveGranularity int     // interleave_granularity
	CapPmem               bool    // cap_pmem
	CapRAM                bool    // cap_ram
	CapType2              bool    // cap_type2
	CapType3              bool    // cap_type3
	// TargetList holds the dport ids of target_list ("12" or "0,1").
	TargetList []int // target_list
	// Targets are the host bridge port names behind TargetList, in order
	// (position i of a region's targets must sit below Targets[i%len]).
	Targets  []string
	QoSClass *int // qos_class (v6.5+)
	// CreatePmem and CreateRAM report which create_*_region files exist:
	// features are detected by presence, never by kernel version.
	CreatePmem   bool // create_pmem_region exists
	CreateRAM    bool // create_ram_region exists (v6.3+ and ram-capable)
	DeleteRegion bool // delete_region exists
}

// SwitchDecoder is a decoder of a host bridge or switch port. Regions
// program them on commit; the daemon only reports them.
type SwitchDecoder struct {
	Name                  string  // decoderX.Y
	Port                  string  // portX
	Start                 *uint64 // start (0400: nil when unreadable)
	Size                  uint64  // size
	Locked                bool    // locked
	InterleaveWays        int     // interleave_ways
	InterleaveGranularity int     // interleave_granularity
	TargetList            []int   // target_list: the port's dport ids
	TargetType            string  // target_type: expander or accelerator
	Region                string  // region ("" when free)
}

// EndpointDecoder is a memdev's HDM decoder; regions use one per target.
type EndpointDecoder struct {
	Name        string  // decoderM.K
	Port        string  // endpointM
	Memdev      string  // memN behind the endpoint (endpointM/uport)
	HostBridge  string  // the host bridge port above the endpoint (e.g. port1)
	Mode        string  // mode: none, ram, pmem, mixed, dead
	DPASize     uint64  // dpa_size (%pa, zero padded)
	DPAResource uint64  // dpa_resource (0xffffffffffffffff while no DPA is allocated)
	Start       *uint64 // start (0400)
	Size        uint64  // size
	Locked      bool    // locked
	Region      string  // region ("" when free)
}

// Memdev is a CXL memory device.
type Memdev struct {
	Name     string // memN
	PmemSize uint64 // pmem/size
	RAMSize  uint64 // ram/size
	Serial   uint64 // serial
	NumaNode int    // numa_node
	Driver   string // driver link (cxl_mem) or ""
	Endpoint string // endpointN whose uport is this memdev, "" when none
}

// Region is a CXL region.
type Region struct {
	Name        string // regionN
	RootDecoder string // parent root decoder, from the device path
	// Type is the region mode: "pmem" or "ram". The mode file is absent
	// before v6.3, where every region is pmem.
	Type string // mode
	// UUID is "" for ram regions and for a pmem region whose uuid is unset
	// (the kernel shows the null uuid).
	UUID string // uuid
	Size uint64 // size
	// Resource is nil while no HPA is allocated (the kernel shows
	// 0xffffffffffffffff).
	Resource              *uint64  // resource
	InterleaveWays        int      // interleave_ways
	InterleaveGranularity int      // interleave_granularity
	Targets               []string // target0..target<ways-1>, "" where empty
	Committed             bool     // commit
	Driver                string   // driver link: "cxl_region" when bound
	Locked                *bool    // locked (v7.1+)
	// Below is what the kernel registers asynchronously below a bound
	// region: for pmem the pmem_regionN device and the nd region on the nd
	// bus, for ram the dax_regionN device.
	PmemRegion     string // pmem_regionN child, "" when absent
	DaxRegion      string // dax_regionN child, "" when absent
	NDRegion       string // nd region of the same name on the nd bus, "" when absent
	NDRegionBound  bool   // bus/nd/devices/<NDRegion>/driver exists
	DaxRegionBound bool   // bus/cxl/devices/<DaxRegion>/driver exists
	// Memory is what the region's memory is doing: its dax devices and
	// the memory blocks over its range (memory.go).
	Memory RegionMemory
	// Ino is the inode number of the region's directory: a region that
	// reuses a deleted one's name (and root decoder, and HPA range, and,
	// for ram, its empty uuid) still has a new one. The same before and
	// after the attributes were read, or the reading is refused.
	Ino uint64
}
