package cxlsim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// AssembleSpec describes decoders that platform firmware committed and the
// kernel finds when an endpoint port probes (v6.3+ auto-assembly,
// cxl_add_to_region → construct_region).
type AssembleSpec struct {
	RootDecoder string   // decoder0.N
	Mode        string   // "pmem" or "ram"
	Targets     []string // endpoint decoders, in interleave position order
	Size        uint64   // region size; each target maps Size/len(Targets)
	Granularity int      // 0: the root decoder's
	// Duration is how long the assembly takes from the region's add
	// uevent to its bind (0: WithAssembleDuration).
	Duration time.Duration
}

// ErrAssemblyAborted is AutoAssemble's error when the region was
// unregistered (deleted) while the kernel still assembled it.
var ErrAssemblyAborted = errors.New("cxlsim: auto-assembly aborted: region unregistered under construction")

// AutoAssemble plays the kernel assembling a region from firmware-committed
// decoders, over spec.Duration:
//
//  1. "firmware" state: each target decoder has its DPA and is committed;
//     construct_region takes the root decoder's cached id exactly as a
//     create_*_region write does (a userspace create with the name read
//     earlier then gets EBUSY) and adds regionN (add uevent). For the first
//     5% of the duration the unregister_region devres action is not
//     registered yet: a delete then WARNs.
//  2. __construct_region sets ways, granularity and the HPA range (15%),
//     then each target is attached (60%). A delete during 2 frees the
//     region under construction: KASAN slab-use-after-free, and
//     AutoAssemble returns ErrAssemblyAborted.
//  3. The region is committed, then bound (device_attach) after the last
//     20%, with the asynchronous nd / dax registration that follows any
//     bind.
//
// It blocks until done and returns the region's name. A cancelled ctx
// makes the remaining steps run without delay: kernel work is not
// interrupted by the caller going away.
func (k *Kernel) AutoAssemble(ctx context.Context, spec AssembleSpec) (string, error) {
	k.mu.Lock()
	r, err := k.startAssembly(spec)
	k.saveOrLog()
	k.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("auto-assemble on %s: %w", spec.RootDecoder, err)
	}
	d := spec.Duration
	if d <= 0 {
		d = k.cfg.assembleTime
	}
	step := func(frac float64, f func() error) error {
		k.sleepCtx(ctx, time.Duration(float64(d)*frac))
		k.mu.Lock()
		defer k.mu.Unlock()
		defer k.saveOrLog()
		if r.unregistered || k.closed {
			return fmt.Errorf("auto-assemble %s: %w", r.Name, ErrAssemblyAborted)
		}
		return f()
	}
	if err := step(0.05, func() error { r.action = true; return nil }); err != nil {
		return "", err
	}
	if err := step(0.15, func() error { k.constructParams(r); return nil }); err != nil {
		return "", err
	}
	for pos := range r.AssemblyTargets {
		if err := step(0.60/float64(len(r.AssemblyTargets)), func() error { k.assembleAttach(r, pos); return nil }); err != nil {
			return "", err
		}
	}
	if err := step(0.20, func() error {
		r.State = stateCommit
		r.Assembling = false
		return k.probeRegion(r)
	}); err != nil {
		return "", err
	}
	return r.Name, nil
}

func (k *Kernel) sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 || ctx.Err() != nil {
		return
	}
	ch := make(chan struct{})
	stop := k.cfg.clock.AfterFunc(d, func() { close(ch) })
	select {
	case <-ch:
	case <-ctx.Done():
		stop()
	}
}

// startAssembly validates the spec, gives the targets their firmware
// state (mode, DPA, committed) and constructs the region device.
func (k *Kernel) startAssembly(spec AssembleSpec) (*regionState, error) {
	if !k.st.ACPIBound || k.closed {
		return nil, unix.ENODEV
	}
	rd := k.rds[spec.RootDecoder]
	if rd == nil {
		return nil, fmt.Errorf("no root decoder %q: %w", spec.RootDecoder, unix.ENODEV)
	}
	w := k.st.Topology.RootDecoders[rd.Index]
	switch {
	case spec.Mode == "pmem" && w.Pmem, spec.Mode == "ram" && w.RAM:
	default:
		return nil, fmt.Errorf("mode %q not allowed by the window: %w", spec.Mode, unix.EINVAL)
	}
	ways := len(spec.Targets)
	rootWays := len(w.HostBridges)
	if _, ok := waysToEIW(ways); !ok || ways%rootWays != 0 {
		return nil, fmt.Errorf("%d targets: %w", ways, unix.EINVAL)
	}
	gran := spec.Granularity
	if gran == 0 {
		gran = w.Granularity
	}
	if !validGranularity(gran) || (rootWays > 1 && gran != w.Granularity) {
		return nil, fmt.Errorf("granularity %d: %w", gran, unix.EINVAL)
	}
	if spec.Size == 0 || spec.Size%(sz256M*uint64(ways)) != 0 {
		return nil, fmt.Errorf("size %#x: %w", spec.Size, unix.EINVAL)
	}
	var eds []*epDecState
	for pos, name := range spec.Targets {
		ed := k.eds[name]
		if ed == nil || !k.ports[ed.Port].Bound {
			return nil, fmt.Errorf("target %q: %w", name, unix.ENODEV)
		}
		hb := k.st.Topology.Memdevs[ed.Memdev].HostBridge
		if w.HostBridges[pos%rootWays] != hb {
			return nil, fmt.Errorf("target %s at position %d is not below the window's bridge: %w", name, pos, unix.ENXIO)
		}
		if ed.Region != "" || ed.DPA != nil || ed.Enabled {
			return nil, fmt.Errorf("target %s in use: %w", name, unix.EBUSY)
		}
		for _, o := range eds {
			if o.Memdev == ed.Memdev {
				return nil, fmt.Errorf("two targets on mem%d: %w", ed.Memdev, unix.EBUSY)
			}
		}
		if p := k.ports[ed.Port]; p.CommitEnd+1 != ed.Index || p.HdmEnd+1 != ed.Index {
			return nil, fmt.Errorf("target %s is not its port's next decoder: %w", name, unix.EBUSY)
		}
		eds = append(eds, ed)
	}
	hbs := map[int]*switchDecState{}
	for _, ed := range eds {
		hb := k.st.Topology.Memdevs[ed.Memdev].HostBridge
		if hbs[hb] != nil {
			continue
		}
		p := k.st.Ports[hb]
		var free *switchDecState
		for _, sd := range k.st.Switch {
			if sd.Port == p.Name && sd.Region == "" && !sd.Enabled {
				free = sd
				break
			}
		}
		if free == nil || p.CommitEnd+1 != free.Index {
			return nil, fmt.Errorf("no free decoder on %s: %w", p.Name, unix.EBUSY)
		}
		hbs[hb] = free
	}
	start, ok := k.findFreeHPA(rd.Name, spec.Size)
	if !ok {
		return nil, fmt.Errorf("no room for %#x: %w", spec.Size, unix.ERANGE)
	}
	// Firmware programmed and committed these decoders before boot.
	for _, ed := range eds {
		old := ed.Mode
		ed.Mode = spec.Mode
		if err := k.dpaAlloc(ed, spec.Size/uint64(ways)); err != nil {
			ed.Mode = old
			for _, o := range eds {
				if o.DPA != nil && o != ed {
					_ = k.dpaFree(o)
				}
			}
			return nil, fmt.Errorf("dpa for %s: %w", ed.Name, err)
		}
	}
	for _, ed := range eds {
		_ = k.commitDecoder(k.ports[ed.Port], ed.Index, &ed.Enabled)
	}
	for hb, sd := range hbs {
		_ = k.commitDecoder(k.st.Ports[hb], sd.Index, &sd.Enabled)
	}
	r, err := k.createRegion(rd, spec.Mode, rd.CachedID)
	if err != nil {
		return nil, err
	}
	r.action = false // registered after device_add returns
	r.Auto = true
	r.Assembling = true
	r.AssemblyTargets = slices.Clone(spec.Targets)
	r.AssemblyRes = &hpa{Start: start, Size: spec.Size}
	r.Gran = gran // kept here until __construct_region publishes it
	for _, sd := range hbs {
		sd.Region = r.Name
	}
	return r, nil
}

// constructParams is the part of __construct_region that fills the
// region's parameters.
func (k *Kernel) constructParams(r *regionState) {
	r.Ways = len(r.AssemblyTargets)
	r.Res = r.AssemblyRes
	r.State = stateInterleaveActive
}

// assembleAttach attaches the target at pos (cxl_region_attach, auto
// path).
func (k *Kernel) assembleAttach(r *regionState, pos int) {
	ed := k.eds[r.AssemblyTargets[pos]]
	hb := k.st.Topology.Memdevs[ed.Memdev].HostBridge
	var sd *switchDecState
	for _, s := range k.st.Switch {
		if s.Port == k.st.Ports[hb].Name && s.Region == r.Name {
			sd = s
			break
		}
	}
	if sd != nil {
		sd.Region = r.Name
	}
	ed.Region = r.Name
	ed.Ways, ed.Gran = r.Ways, r.Gran
	ed.Start, ed.Size = r.Res.Start, r.Res.Size
	r.Targets[pos] = ed.Name
	r.NrTargets++
	if r.NrTargets == r.Ways {
		k.setupTargets(r)
		r.State = stateActive
	}
}

// finishAssembly completes an assembly a previous process left unfinished
// (state file load): the kernel would have finished it.
func (k *Kernel) finishAssembly(r *regionState) {
	r.action = true
	if r.State < stateInterleaveActive {
		k.constructParams(r)
	}
	for pos := range r.AssemblyTargets {
		if r.Targets[pos] == "" {
			k.assembleAttach(r, pos)
		}
	}
	r.State = stateCommit
	r.Assembling = false
	if !r.Bound {
		_ = k.probeRegion(r)
		if r.stopRegister != nil {
			r.stopRegister()
		}
		k.completeRegistration(r)
	}
}
