package region

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/cxlregion/cxlregiond/internal/devname"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// createPlan is a validated create request resolved against one reading of
// the topology: everything the create will write.
type createPlan struct {
	root        sysfs.RootDecoder
	typ         string
	size        uint64
	ways        int
	granularity int
	uuid        string // "" for ram
	targets     []sysfs.EndpointDecoder
	noBind      bool
	// hpaStart is where the kernel will place the region (hpaKnown false
	// when the window's start is unreadable).
	hpaStart uint64
	hpaKnown bool
}

// checkRequest validates what can be checked without the topology. An
// empty root decoder and a zero size are defaults (defaultRootDecoder, the
// largest size planCreate can place).
func checkRequest(req CreateRequest) error {
	if req.RootDecoder != "" {
		if err := ValidateDecoderName(req.RootDecoder); err != nil {
			return err
		}
	}
	if err := ValidateType(req.Type); err != nil {
		return err
	}
	if req.Ways != 0 {
		if err := ValidateWays(req.Ways); err != nil {
			return err
		}
	}
	if len(req.Targets) > MaxTargets {
		return fmt.Errorf("%d targets: at most %d: %w", len(req.Targets), MaxTargets, ErrInvalid)
	}
	if req.Ways != 0 && len(req.Targets) != 0 && len(req.Targets) != req.Ways {
		return fmt.Errorf("%d targets for %d ways: %w", len(req.Targets), req.Ways, ErrInvalid)
	}
	for _, t := range req.Targets {
		if err := ValidateTargetName(t); err != nil {
			return err
		}
	}
	if req.Granularity != 0 {
		if err := ValidateGranularity(req.Granularity); err != nil {
			return err
		}
	}
	if req.UUID != "" {
		if req.Type == "ram" {
			return fmt.Errorf("uuid: ram regions have none: %w", ErrInvalid)
		}
		if err := ValidateUUID(req.UUID); err != nil {
			return err
		}
	}
	if req.Size == 0 {
		return nil
	}
	ways := req.Ways
	if ways == 0 {
		ways = max(len(req.Targets), 1)
	}
	return ValidateSize(req.Size, ways)
}

// planCreate resolves a request against a topology. Every error wraps
// ErrInvalid (or ErrNotFound for a root decoder that does not exist) and
// says what was wrong; nothing is written before a plan exists.
func planCreate(req CreateRequest, topo *sysfs.Topology, uuidInUse func(string) bool) (*createPlan, error) {
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	i := slices.IndexFunc(topo.RootDecoders, func(rd sysfs.RootDecoder) bool { return rd.Name == req.RootDecoder })
	if i < 0 {
		return nil, fmt.Errorf("root decoder %s: %w", req.RootDecoder, ErrNotFound)
	}
	p := &createPlan{root: topo.RootDecoders[i], typ: req.Type, size: req.Size, uuid: req.UUID, noBind: req.NoBind}
	switch {
	case p.typ == "pmem" && !p.root.CreatePmem:
		return nil, fmt.Errorf("root decoder %s cannot hold pmem regions (no create_pmem_region): %w", p.root.Name, ErrInvalid)
	case p.typ == "ram" && !p.root.CreateRAM:
		return nil, fmt.Errorf("root decoder %s cannot hold ram regions (no create_ram_region; ram regions need Linux 6.3+ and a ram-capable window): %w", p.root.Name, ErrInvalid)
	}
	rootWays := max(p.root.InterleaveWays, 1)
	p.ways = req.Ways
	if p.ways == 0 {
		p.ways = max(len(req.Targets), rootWays)
	}
	if p.ways%rootWays != 0 || bits.OnesCount(uint(p.ways/rootWays)) != 1 {
		return nil, fmt.Errorf("interleave ways %d: root decoder %s interleaves %d ways, so ways must be %d × a power of two: %w",
			p.ways, p.root.Name, rootWays, rootWays, ErrInvalid)
	}
	p.granularity = req.Granularity
	if p.granularity == 0 {
		p.granularity = max(p.root.InterleaveGranularity, 256)
	}
	if rootWays > 1 && p.granularity != p.root.InterleaveGranularity {
		return nil, fmt.Errorf("interleave granularity %d: root decoder %s interleaves across host bridges at %d, which a region must use: %w",
			p.granularity, p.root.Name, p.root.InterleaveGranularity, ErrInvalid)
	}
	if p.uuid != "" && uuidInUse(p.uuid) {
		return nil, fmt.Errorf("uuid %s: already used by another region: %w", p.uuid, ErrInvalid)
	}
	if p.typ == "pmem" && p.uuid == "" {
		p.uuid = newUUID()
	}
	v := newOrderView(topo)
	if p.size == 0 {
		return p.largest(req, topo, v)
	}
	return p.place(req, topo, v)
}

// largest plans the largest size the targets can give (the default size,
// as `cxl create-region` without -s): every multiple of 256 MiB × ways the
// window can place, largest first, until one plans.
func (p *createPlan) largest(req CreateRequest, topo *sysfs.Topology, v *orderView) (*createPlan, error) {
	step := uint64(SizeAlign) * uint64(p.ways)
	var firstErr error
	for size := v.largestHPA(p.root, p.ways); size > 0; size -= step {
		try := *p
		try.size = size
		got, err := try.place(req, topo, v)
		if err == nil {
			return got, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("root decoder %s has no free range for %d ways: %w", p.root.Name, p.ways, ErrBusy)
	}
	return nil, fmt.Errorf("no size fits (the largest tried: %w)", firstErr)
}

// place checks the size against the window and picks the targets.
func (p *createPlan) place(req CreateRequest, topo *sysfs.Topology, v *orderView) (*createPlan, error) {
	if err := ValidateSize(p.size, p.ways); err != nil {
		return nil, err
	}
	if p.size > p.root.Size {
		return nil, fmt.Errorf("size %d: larger than the window (%d): %w", p.size, p.root.Size, ErrInvalid)
	}
	start, ok := v.nextHPA(p.root, p.size)
	if !ok && p.root.Start != nil {
		return nil, fmt.Errorf("root decoder %s has no free range of %s (the largest it can place for %d ways is %s): %w",
			p.root.Name, formatBytes(p.size), p.ways, formatBytes(v.largestHPA(p.root, p.ways)), ErrBusy)
	}
	p.hpaStart, p.hpaKnown = start, ok
	targets, err := pickTargets(req.Targets, p, topo, v)
	if err != nil {
		return nil, err
	}
	p.targets = targets
	return p, nil
}

// pickTargets checks the named endpoint decoders, or picks free ones: one
// per way, each on a different memdev below the host bridge its position
// needs, with enough free capacity, and acceptable by the kernel's order
// rules (order.go). A position nothing can serve only because of an order
// rule is ErrBusy (it clears when other regions go), otherwise ErrInvalid.
func pickTargets(names []string, p *createPlan, topo *sysfs.Topology, v *orderView) ([]sysfs.EndpointDecoder, error) {
	perWay := p.size / uint64(p.ways)
	usedMem := map[string]bool{}
	out := make([]sysfs.EndpointDecoder, 0, p.ways)
	for pos := 0; pos < p.ways; pos++ {
		var hb string
		if len(p.root.Targets) > 0 {
			hb = p.root.Targets[pos%len(p.root.Targets)]
		}
		if pos < len(names) && devname.IsMemdev(names[pos]) {
			ed, err := pickOnMemdev(names[pos], pos, hb, p, perWay, usedMem, topo, v)
			if err != nil {
				return nil, err
			}
			usedMem[ed.Memdev] = true
			out = append(out, ed)
			continue
		}
		if pos < len(names) {
			j := slices.IndexFunc(topo.EndpointDecoders, func(ed sysfs.EndpointDecoder) bool { return ed.Name == names[pos] })
			if j < 0 {
				return nil, fmt.Errorf("target%d %s: no such endpoint decoder: %w", pos, names[pos], ErrInvalid)
			}
			ed := topo.EndpointDecoders[j]
			if why := unusable(ed, hb, p.typ, perWay, usedMem, topo); why != "" {
				return nil, fmt.Errorf("target%d %s: %s: %w", pos, ed.Name, why, ErrInvalid)
			}
			if why := p.orderBlocks(ed, v); why != "" {
				return nil, fmt.Errorf("target%d %s: %s: %w", pos, ed.Name, why, ErrBusy)
			}
			usedMem[ed.Memdev] = true
			out = append(out, ed)
			continue
		}
		var reasons []string
		found, busy := false, false
		for _, ed := range topo.EndpointDecoders {
			why := unusable(ed, hb, p.typ, perWay, usedMem, topo)
			if n := v.strandedReason(ed); why != "" && n != "" {
				why = n
			}
			if why == "" {
				if why = p.orderBlocks(ed, v); why != "" {
					busy = true
				}
			}
			if why == "" {
				usedMem[ed.Memdev] = true
				out = append(out, ed)
				found = true
				break
			}
			if len(reasons) < 4 || busy && !slices.ContainsFunc(reasons, isOrderReason) {
				reasons = append(reasons, ed.Name+": "+why)
			}
		}
		if !found {
			where := "any host bridge"
			if hb != "" {
				where = "host bridge " + hb
			}
			kind := ErrInvalid
			if busy {
				// Some decoder would serve but for the kernel's order
				// rules: retry once the named regions are deleted. Say
				// those reasons first.
				kind = ErrBusy
				slices.SortStableFunc(reasons, func(a, b string) int {
					ao, bo := isOrderReason(a), isOrderReason(b)
					switch {
					case ao && !bo:
						return -1
					case bo && !ao:
						return 1
					}
					return 0
				})
			}
			return nil, fmt.Errorf("target%d: no endpoint decoder below %s can take %s of %s now (%s): %w",
				pos, where, formatBytes(perWay), p.typ, strings.Join(reasons, "; "), kind)
		}
	}
	return out, nil
}

// pickOnMemdev picks the endpoint decoder of a memdev named as a target
// (`cxl create-region -m mem0`): the first, in id order, that the kernel
// would accept.
func pickOnMemdev(memdev string, pos int, hb string, p *createPlan, perWay uint64, usedMem map[string]bool, topo *sysfs.Topology, v *orderView) (sysfs.EndpointDecoder, error) {
	var reasons []string
	busy, found := false, false
	decs := slices.Clone(topo.EndpointDecoders)
	slices.SortFunc(decs, func(a, b sysfs.EndpointDecoder) int { return sysfs.CompareNames(a.Name, b.Name) })
	for _, ed := range decs {
		if ed.Memdev != memdev {
			continue
		}
		found = true
		why := unusable(ed, hb, p.typ, perWay, usedMem, topo)
		if n := v.strandedReason(ed); why != "" && n != "" {
			why = n
		}
		if why == "" {
			if why = p.orderBlocks(ed, v); why == "" {
				return ed, nil
			}
			busy = true
		}
		reasons = append(reasons, ed.Name+": "+why)
	}
	if !found {
		return sysfs.EndpointDecoder{}, fmt.Errorf("target%d %s: no such memdev with endpoint decoders: %w", pos, memdev, ErrInvalid)
	}
	kind := ErrInvalid
	if busy || slices.ContainsFunc(reasons, isOrderReason) {
		kind = ErrBusy
	}
	return sysfs.EndpointDecoder{}, fmt.Errorf("target%d %s: no endpoint decoder can take %s of %s now (%s): %w",
		pos, memdev, formatBytes(perWay), p.typ, strings.Join(reasons, "; "), kind)
}

// unusable says why an endpoint decoder cannot serve a position, or "".
func unusable(ed sysfs.EndpointDecoder, hostBridge, typ string, perWay uint64, usedMem map[string]bool, topo *sysfs.Topology) string {
	switch {
	case ed.Region != "":
		return "already used by " + ed.Region
	case ed.Locked:
		return "locked by the platform"
	case ed.Mode == "dead":
		return "its memdev is gone"
	case hostBridge != "" && ed.HostBridge != hostBridge:
		return fmt.Sprintf("below %s, but this position needs %s", ed.HostBridge, hostBridge)
	case usedMem[ed.Memdev]:
		return "its memdev " + ed.Memdev + " already serves another position"
	}
	var capacity, allocated uint64
	for _, m := range topo.Memdevs {
		if m.Name == ed.Memdev {
			capacity = m.PmemSize
			if typ == "ram" {
				capacity = m.RAMSize
			}
		}
	}
	for _, other := range topo.EndpointDecoders {
		if other.Port != ed.Port || other.Name == ed.Name {
			continue
		}
		if other.Mode == typ {
			allocated += other.DPASize
		}
		if sysfs.CompareNames(other.Name, ed.Name) < 0 && other.DPASize == 0 {
			return "a lower decoder on " + ed.Port + " is unallocated (" + other.Name + "): the kernel allocates in order"
		}
	}
	if ed.DPASize != 0 && (ed.DPASize != perWay || ed.Mode != typ) {
		return fmt.Sprintf("holds a %s allocation of %d bytes", ed.Mode, ed.DPASize)
	}
	if ed.DPASize == 0 && capacity < allocated+perWay {
		return fmt.Sprintf("memdev %s has %d bytes of free %s capacity, %d needed", ed.Memdev, capacity-min(capacity, allocated), typ, perWay)
	}
	return ""
}

// orderBlocks says which of the kernel's order rules (order.go) would make
// the kernel refuse ed as a target of this plan, or "".
func (p *createPlan) orderBlocks(ed sysfs.EndpointDecoder, v *orderView) string {
	if why := v.endpointOrder(ed); why != "" {
		return why
	}
	if ed.HostBridge != "" {
		if why := v.hostBridgeOrder(ed.HostBridge); why != "" {
			return why
		}
	}
	if !p.hpaKnown {
		return ""
	}
	for _, port := range []string{ed.Port, ed.HostBridge} {
		if port == "" {
			continue
		}
		if why := v.hpaOrder(port, p.hpaStart); why != "" {
			return why
		}
	}
	return ""
}

// isOrderReason reports whether a refusal reason names an order rule.
func isOrderReason(reason string) bool {
	for _, s := range []string{"in id order", "HPA order", "no free decoder", "not committed yet", "still holds"} {
		if strings.Contains(reason, s) {
			return true
		}
	}
	return false
}
