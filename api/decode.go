package api

import (
	"fmt"
	"slices"
	"sort"

	"github.com/godbus/dbus/v5"
)

// Properties is one interface's properties as D-Bus delivers them.
type Properties = map[string]dbus.Variant

// propReader reads typed properties and remembers the first missing or
// mistyped one, so a decoder reads a dozen fields and checks once.
type propReader struct {
	iface string
	props Properties
	err   error
}

func get[T any](r *propReader, name string) T {
	var zero T
	if r.err != nil {
		return zero
	}
	v, ok := r.props[name]
	if !ok {
		r.err = fmt.Errorf("%s: property %s missing", r.iface, name)
		return zero
	}
	t, ok := v.Value().(T)
	if !ok {
		r.err = fmt.Errorf("%s: property %s has type %s, want %s", r.iface, name, v.Signature(), dbus.SignatureOf(zero))
		return zero
	}
	return t
}

// DecodeRegion turns a Region object's properties into its JSON shape.
func DecodeRegion(props Properties) (Region, error) {
	r := &propReader{iface: RegionInterface, props: props}
	reg := Region{
		Region:                get[string](r, PropName),
		Resource:              get[uint64](r, PropResource),
		Size:                  get[uint64](r, PropSize),
		Type:                  get[string](r, PropType),
		InterleaveWays:        get[uint32](r, PropInterleaveWays),
		InterleaveGranularity: get[uint32](r, PropInterleaveGranularity),
		UUID:                  get[string](r, PropUUID),
		RootDecoder:           get[string](r, PropRootDecoder),
		Generation:            get[uint64](r, PropGeneration),
		Origin:                get[string](r, PropOrigin),
		Lifecycle:             get[string](r, PropState),
		Settled:               get[bool](r, PropSettled),
		Mode:                  get[string](r, PropDaxMode),
		TotalMemblocks:        get[uint32](r, PropMemoryBlocks),
		OnlineMemblocks:       get[uint32](r, PropOnlineMemoryBlocks),
		OnlineMemoryBytes:     get[uint64](r, PropOnlineMemoryBytes),
		Movable:               get[bool](r, PropMovable),
	}
	if node := get[int32](r, PropTargetNode); node >= 0 {
		reg.TargetNode = &node
	}
	targets := get[[]string](r, PropTargets)
	memdevs := get[[]string](r, PropMemdevs)
	if r.err != nil {
		return Region{}, r.err
	}
	reg.DecodeState = DecodeState(reg.Lifecycle)
	reg.State = CxlState(reg.Lifecycle)
	reg.Mappings = []Mapping{}
	for pos, dec := range targets {
		if dec == "" {
			continue
		}
		m := Mapping{Position: pos, Decoder: dec}
		if pos < len(memdevs) {
			m.Memdev = memdevs[pos]
		}
		reg.Mappings = append(reg.Mappings, m)
	}
	return reg, nil
}

// DecodeState maps a region state to cxl list's decode_state: "commit" once
// the decoders are committed, "reset" before; "" while a delete is in
// flight, when the commit state is changing.
func DecodeState(state string) string {
	switch state {
	case StateConfiguring:
		return "reset"
	case StateCommitted, StateEnabled:
		return "commit"
	}
	return ""
}

// CxlState maps a region state to cxl list's state: "disabled" unless the
// region is bound (enabled); while a delete is in flight the region is on
// its way out and shown disabled.
func CxlState(state string) string {
	if state == StateEnabled {
		return ""
	}
	return "disabled"
}

// DecodeRootDecoder turns a RootDecoder object's properties into its JSON
// shape.
func DecodeRootDecoder(props Properties) (RootDecoder, error) {
	r := &propReader{iface: RootDecoderInterface, props: props}
	rd := RootDecoder{
		Decoder:               get[string](r, PropName),
		Port:                  get[string](r, PropPort),
		Size:                  get[uint64](r, PropSize),
		MaxAvailableExtent:    get[uint64](r, PropFreeCapacity),
		PmemCapable:           get[bool](r, PropPmemCapable),
		VolatileCapable:       get[bool](r, PropRAMCapable),
		InterleaveWays:        get[uint32](r, PropInterleaveWays),
		InterleaveGranularity: get[uint32](r, PropInterleaveGranularity),
		Targets:               get[[]string](r, PropTargets),
		Frozen:                get[bool](r, PropFrozen),
		FrozenReason:          get[string](r, PropFrozenReason),
		QueueDepth:            get[uint32](r, PropQueueDepth),
	}
	if r.err != nil {
		return RootDecoder{}, r.err
	}
	if rd.Targets == nil {
		rd.Targets = []string{}
	}
	return rd, nil
}

// DecodeJob turns a Job object's properties into its JSON shape.
func DecodeJob(props Properties) (Job, error) {
	r := &propReader{iface: JobInterface, props: props}
	j := Job{
		Operation: get[string](r, PropOperation),
		Progress:  get[float64](r, PropProgress),
		Finished:  get[bool](r, PropFinished),
		Success:   get[bool](r, PropSuccess),
		ErrorName: get[string](r, PropErrorName),
		Message:   get[string](r, PropMessage),
	}
	objs := get[[]dbus.ObjectPath](r, PropObjects)
	if r.err != nil {
		return Job{}, r.err
	}
	// Progress is a fraction; NaN or infinity would also make --json fail.
	if !(j.Progress >= 0 && j.Progress <= 1) {
		return Job{}, fmt.Errorf("%s: property %s is %g, not within [0, 1]", JobInterface, PropProgress, j.Progress)
	}
	j.Objects = make([]string, len(objs))
	for i, o := range objs {
		j.Objects[i] = string(o)
	}
	return j, nil
}

// ManagedObjects is the reply of ObjectManager.GetManagedObjects.
type ManagedObjects = map[dbus.ObjectPath]map[string]Properties

// DecodeStatus builds the status from the Manager's properties and the
// managed objects.
func DecodeStatus(manager Properties, objects ManagedObjects) (Status, error) {
	r := &propReader{iface: ManagerInterface, props: manager}
	st := Status{
		Version:        get[string](r, PropVersion),
		GuardActive:    get[bool](r, PropGuardActive),
		GuardQueue:     get[uint32](r, PropGuardQueue),
		Simulated:      get[bool](r, PropSimulated),
		KernelFeatures: get[[]string](r, PropKernelFeatures),
	}
	if r.err != nil {
		return Status{}, r.err
	}
	if st.KernelFeatures == nil {
		st.KernelFeatures = []string{}
	}
	memdevs, err := decodeMemdevs(manager)
	if err != nil {
		return Status{}, err
	}
	st.Memdevs = memdevs
	st.RootDecoders = []RootDecoder{}
	for _, path := range sortedPaths(objects) {
		ifaces := objects[path]
		if props, ok := ifaces[RootDecoderInterface]; ok {
			rd, err := DecodeRootDecoder(props)
			if err != nil {
				return Status{}, fmt.Errorf("%s: %w", path, err)
			}
			st.RootDecoders = append(st.RootDecoders, rd)
		}
		if _, ok := ifaces[RegionInterface]; ok {
			st.Regions++
		}
	}
	return st, nil
}

// DecodeRegions returns every region among the managed objects, in the
// kernel's id order (region2 before region10).
func DecodeRegions(objects ManagedObjects) ([]Region, error) {
	out := []Region{}
	for _, path := range sortedPaths(objects) {
		if props, ok := objects[path][RegionInterface]; ok {
			reg, err := DecodeRegion(props)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			out = append(out, reg)
		}
	}
	return out, nil
}

// sortedPaths orders object paths naturally: runs of digits compare as
// numbers, so region2 sorts before region10.
func sortedPaths(objects ManagedObjects) []dbus.ObjectPath {
	paths := make([]dbus.ObjectPath, 0, len(objects))
	for p := range objects {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return NaturalLess(string(paths[i]), string(paths[j])) })
	return paths
}

// NaturalLess orders strings with embedded numbers by value:
// decoder2.0 < decoder10.0.
func NaturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := trimZeros(a[:da]), trimZeros(b[:db])
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

// decodeMemdevs reads Manager.MemdevCapacity and Manager.EndpointDecoders
// into Memdevs, in the kernel's name order.
func decodeMemdevs(manager Properties) ([]Memdev, error) {
	r := &propReader{iface: ManagerInterface, props: manager}
	caps := get[map[string]map[string]uint64](r, PropMemdevCapacity)
	decs := get[map[string]map[string]dbus.Variant](r, PropEndpointDecoders)
	if r.err != nil {
		return nil, r.err
	}
	out := []Memdev{}
	index := map[string]int{}
	for _, name := range sortedKeys(caps) {
		c := caps[name]
		out = append(out, Memdev{Memdev: name, Total: c["total"], Allocated: c["allocated"], Free: c["free"], Stranded: c["stranded"],
			Decoders: []EndpointDecoder{}})
		index[name] = len(out) - 1
	}
	for _, name := range sortedKeys(decs) {
		dr := &propReader{iface: ManagerInterface + "." + PropEndpointDecoders + "[" + name + "]", props: decs[name]}
		ed := EndpointDecoder{Decoder: name, Memdev: get[string](dr, "memdev"), Mode: get[string](dr, "mode"),
			DPASize: get[uint64](dr, "dpa_size"), Region: get[string](dr, "region"), Stranded: get[bool](dr, "stranded")}
		if dr.err != nil {
			return nil, dr.err
		}
		if i, ok := index[ed.Memdev]; ok {
			out[i].Decoders = append(out[i].Decoders, ed)
		}
	}
	return out, nil
}

// sortedKeys lists a map's keys in the kernel's name order (mem2 before
// mem10).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		switch {
		case NaturalLess(a, b):
			return -1
		case NaturalLess(b, a):
			return 1
		}
		return 0
	})
	return keys
}
