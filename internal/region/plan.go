package region

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"

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
}

// checkRequest validates what can be checked without the topology.
func checkRequest(req CreateRequest) error {
	if err := ValidateDecoderName(req.RootDecoder); err != nil {
		return err
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
		if err := ValidateDecoderName(t); err != nil {
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
	if err := ValidateSize(p.size, p.ways); err != nil {
		return nil, err
	}
	if p.size > p.root.Size {
		return nil, fmt.Errorf("size %d: larger than the window (%d): %w", p.size, p.root.Size, ErrInvalid)
	}
	if p.uuid != "" && uuidInUse(p.uuid) {
		return nil, fmt.Errorf("uuid %s: already used by another region: %w", p.uuid, ErrInvalid)
	}
	if p.typ == "pmem" && p.uuid == "" {
		p.uuid = newUUID()
	}
	targets, err := pickTargets(req.Targets, p, topo)
	if err != nil {
		return nil, err
	}
	p.targets = targets
	return p, nil
}

// pickTargets checks the named endpoint decoders, or picks free ones: one
// per way, each on a different memdev below the host bridge its position
// needs, with enough free capacity, and next in line on its port (the
// kernel allocates DPA only on the lowest unallocated decoder).
func pickTargets(names []string, p *createPlan, topo *sysfs.Topology) ([]sysfs.EndpointDecoder, error) {
	perWay := p.size / uint64(p.ways)
	usedMem := map[string]bool{}
	out := make([]sysfs.EndpointDecoder, 0, p.ways)
	for pos := 0; pos < p.ways; pos++ {
		var hb string
		if len(p.root.Targets) > 0 {
			hb = p.root.Targets[pos%len(p.root.Targets)]
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
			usedMem[ed.Memdev] = true
			out = append(out, ed)
			continue
		}
		var reasons []string
		found := false
		for _, ed := range topo.EndpointDecoders {
			why := unusable(ed, hb, p.typ, perWay, usedMem, topo)
			if why == "" {
				usedMem[ed.Memdev] = true
				out = append(out, ed)
				found = true
				break
			}
			if len(reasons) < 4 {
				reasons = append(reasons, ed.Name+": "+why)
			}
		}
		if !found {
			where := "any host bridge"
			if hb != "" {
				where = "host bridge " + hb
			}
			return nil, fmt.Errorf("target%d: no free endpoint decoder below %s for %d bytes of %s (%s): %w",
				pos, where, perWay, p.typ, strings.Join(reasons, "; "), ErrInvalid)
		}
	}
	return out, nil
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
