package api

// Property names of the Manager interface.
const (
	PropVersion        = "Version"         // s
	PropKernelFeatures = "KernelFeatures"  // as
	PropGuardActive    = "GuardActive"     // b
	PropGuardQueue     = "GuardQueueDepth" // u: other processes' opens the guard holds or keeps waiting
	PropSimulated      = "Simulated"       // b
	// PropMemdevCapacity is every memdev's device capacity in bytes:
	// memdev → {total, allocated, free, stranded}.
	PropMemdevCapacity = "MemdevCapacity" // a{sa{st}}
	// PropEndpointDecoders is every endpoint decoder's allocation:
	// decoder → {memdev s, mode s, dpa_size t, region s ("" when none),
	// stranded b}.
	PropEndpointDecoders = "EndpointDecoders" // a{sa{sv}}
	PropLockDirectory    = "LockDirectory"    // s: where the writers' lock files are (cxlregionctl lock)
)

// Property names shared by RootDecoder and Region.
const (
	PropName                  = "Name"                  // s
	PropSize                  = "Size"                  // t
	PropInterleaveWays        = "InterleaveWays"        // u
	PropInterleaveGranularity = "InterleaveGranularity" // u
	PropTargets               = "Targets"               // as
)

// Property names of the RootDecoder interface.
const (
	PropPort         = "Port"         // s
	PropPmemCapable  = "PmemCapable"  // b
	PropRAMCapable   = "RamCapable"   // b
	PropFreeCapacity = "FreeCapacity" // t
	PropFrozen       = "Frozen"       // b
	PropFrozenReason = "FrozenReason" // s
	PropQueueDepth   = "QueueDepth"   // u
)

// Property names of the Region interface.
const (
	PropRootDecoder = "RootDecoder" // s
	PropType        = "Type"        // s
	PropResource    = "Resource"    // t
	PropUUID        = "Uuid"        // s
	PropMemdevs     = "Memdevs"     // as
	PropState       = "State"       // s
	PropGeneration  = "Generation"  // t
	PropOrigin      = "Origin"      // s
	PropSettled     = "Settled"     // b

	// What the region's memory is doing (daxctl list's names in JSON).
	PropDaxMode            = "DaxMode"            // s: system-ram, devdax or "" (no dax device)
	PropTargetNode         = "TargetNode"         // i: NUMA node of its memory, -1 when none
	PropMemoryBlocks       = "MemoryBlocks"       // u: memory blocks over its range
	PropOnlineMemoryBlocks = "OnlineMemoryBlocks" // u: of which online
	PropOnlineMemoryBytes  = "OnlineMemoryBytes"  // t
	PropMovable            = "Movable"            // b: every online block is in ZONE_MOVABLE
)

// Property names of the Job interface.
const (
	PropOperation    = "Operation"    // s
	PropObjects      = "Objects"      // ao
	PropProgress     = "Progress"     // d
	PropStartedByUID = "StartedByUID" // u
	PropCancelable   = "Cancelable"   // b
	PropFinished     = "Finished"     // b
	PropSuccess      = "Success"      // b
	PropErrorName    = "ErrorName"    // s
	PropMessage      = "Message"      // s
)

// Region states (the State property).
const (
	StateConfiguring = "configuring"
	StateCommitted   = "committed"
	StateEnabled     = "enabled"
	StateDeleting    = "deleting"
)

// Method and signal names.
const (
	MethodCreateRegion = "CreateRegion"
	MethodDeleteRegion = "DeleteRegion"
	MethodRefresh      = "Refresh"
	MethodDelete       = "Delete"
	MethodEnable       = "Enable"
	MethodDisable      = "Disable"
	MethodCancel       = "Cancel"
	SignalCompleted    = "Completed"
)
