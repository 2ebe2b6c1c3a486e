package api

import (
	"fmt"
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
// (arrays of structs, which arrive as [][]any) into Memdevs.
func decodeMemdevs(manager Properties) ([]Memdev, error) {
	out := []Memdev{}
	caps, err := structs(manager, PropMemdevCapacity, "stttt")
	if err != nil {
		return nil, err
	}
	index := map[string]int{}
	for _, c := range caps {
		m := Memdev{Memdev: c[0].(string), Total: c[1].(uint64), Allocated: c[2].(uint64), Free: c[3].(uint64), Stranded: c[4].(uint64),
			Decoders: []EndpointDecoder{}}
		index[m.Memdev] = len(out)
		out = append(out, m)
	}
	decs, err := structs(manager, PropEndpointDecoders, "ssstsb")
	if err != nil {
		return nil, err
	}
	for _, d := range decs {
		ed := EndpointDecoder{Decoder: d[0].(string), Memdev: d[1].(string), Mode: d[2].(string), DPASize: d[3].(uint64),
			Region: d[4].(string), Stranded: d[5].(bool)}
		if i, ok := index[ed.Memdev]; ok {
			out[i].Decoders = append(out[i].Decoders, ed)
		}
	}
	return out, nil
}

// structs reads an array-of-struct property whose members have the given
// D-Bus types, one letter each.
func structs(props Properties, name, members string) ([][]any, error) {
	v, ok := props[name]
	if !ok {
		return nil, fmt.Errorf("%s: property %s missing", ManagerInterface, name)
	}
	// godbus hands a received struct array over as [][]any (its variant
	// then says aav): the members' types are checked one by one.
	rows, ok := v.Value().([][]any)
	if !ok {
		return nil, fmt.Errorf("%s: property %s has type %s, want a(%s)", ManagerInterface, name, v.Signature(), members)
	}
	for _, row := range rows {
		if len(row) != len(members) {
			return nil, fmt.Errorf("%s: property %s: a struct of %d members, want %d", ManagerInterface, name, len(row), len(members))
		}
		for i, m := range row {
			if dbus.SignatureOf(m).String() != string(members[i]) {
				return nil, fmt.Errorf("%s: property %s: member %d has type %s, want %c", ManagerInterface, name, i, dbus.SignatureOf(m), members[i])
			}
		}
	}
	return rows, nil
}
