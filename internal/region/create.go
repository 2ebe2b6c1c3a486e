package region

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// handshakeTries bounds the create handshake's retries: EBUSY there means
// another creator (or the kernel's auto-assembly) took the offered name.
const handshakeTries = 8

// Create makes a region: the create handshake and every configuration write
// in kernel order, commit, bind unless asked not to, and a wait until the
// devices below the region are registered, so that the caller may use or
// delete it at once. Any failure rolls everything back in reverse through
// the same writer (guarantee 5).
func (e *Engine) Create(ctx context.Context, req CreateRequest) (info RegionInfo, err error) {
	start := time.Now()
	defer func() {
		target := info.Name
		if target == "" {
			target = req.RootDecoder
		}
		e.hub.publish(Event{Kind: OperationDone, Operation: Operation{
			Op: "create", Target: target, Result: resultOf(err), Duration: time.Since(start), Err: err,
		}})
	}()
	if err := checkRequest(req); err != nil {
		return RegionInfo{}, fmt.Errorf("create: %w", err)
	}
	if _, err := e.RootDecoder(req.RootDecoder); err != nil {
		return RegionInfo{}, fmt.Errorf("create: %w", err)
	}
	w, err := e.writers.Writer(req.RootDecoder)
	if err != nil {
		return RegionInfo{}, fmt.Errorf("create: %w", err)
	}
	ctx, cancel := e.withDefaultTimeout(ctx)
	defer cancel()
	var name string
	err = w.Do(ctx, func(ctx context.Context, tx *lock.Tx) error {
		var err error
		name, err = e.createUnderWriter(ctx, tx, req)
		return err
	})
	if err != nil {
		return RegionInfo{}, fmt.Errorf("create on %s: %w", req.RootDecoder, mapCtxErr(err))
	}
	e.markCreating(name, false)
	if _, err := e.refreshRegion(name); err != nil {
		return RegionInfo{}, fmt.Errorf("create on %s: %w", req.RootDecoder, err)
	}
	return e.Region(name)
}

// createRun is one create in progress: what has been done, so a failure
// can undo exactly that, in reverse.
type createRun struct {
	e      *Engine
	tx     *lock.Tx
	plan   *createPlan
	intent *intent
	name   string

	created   bool
	sized     bool
	targets   []int // positions attached
	committed bool
}

func (e *Engine) createUnderWriter(ctx context.Context, tx *lock.Tx, req CreateRequest) (string, error) {
	if err := e.checkRoot(req.RootDecoder); err != nil {
		return "", err
	}
	topo, err := e.fs.Scan()
	if err != nil {
		return "", err
	}
	plan, err := planCreate(req, topo, func(u string) bool {
		return slices.ContainsFunc(topo.Regions, func(r sysfs.Region) bool { return r.UUID == u })
	})
	if err != nil {
		return "", err
	}
	run := &createRun{e: e, tx: tx, plan: plan}
	if err := run.do(ctx); err != nil {
		var keep *keepError
		if errors.Is(err, errCrashed) || errors.As(err, &keep) {
			return run.name, err
		}
		if rbErr := run.rollback(); rbErr != nil {
			return "", fmt.Errorf("%w (rollback incomplete: %v)", err, rbErr)
		}
		if run.intent != nil {
			_ = e.journal.done(run.intent)
		}
		return "", err
	}
	return run.name, nil
}

func (c *createRun) do(ctx context.Context) error {
	e, p := c.e, c.plan
	createAttr, err := sysfs.DeviceAttr(p.root.Name, "create_"+p.typ+"_region")
	if err != nil {
		return err
	}
	c.intent = &intent{Op: "create", RootDecoder: p.root.Name, Type: p.typ, UUID: p.uuid, Size: p.size, Phase: "begin"}
	for _, t := range p.targets {
		c.intent.Targets = append(c.intent.Targets, t.Name)
	}
	if e.crash("create:begin") {
		return errCrashed
	}
	if err := c.handshake(createAttr); err != nil {
		return err
	}
	if e.crash("create:created") {
		return errCrashed
	}
	if err := c.configure(); err != nil {
		return err
	}
	if e.crash("create:configured") {
		return errCrashed
	}
	if err := c.attach(); err != nil {
		return err
	}
	if e.crash("create:attached") {
		return errCrashed
	}
	if err := PointOfNoReturn(ctx); err != nil {
		return fmt.Errorf("before commit: %w", err)
	}
	if err := c.write("commit", c.regionAttr("commit"), "1"); err != nil {
		return err
	}
	c.committed = true
	if err := e.journal.advance(c.intent, "committed"); err != nil {
		return err
	}
	if e.crash("create:committed") {
		return errCrashed
	}
	if !c.plan.noBind {
		if err := c.write("bind", sysfs.RegionBindPath, c.name); err != nil {
			return err
		}
		if e.crash("create:bound") {
			return errCrashed
		}
		// From here on a rollback would have to unbind or delete a region
		// whose devices may still be registering: the crash this daemon
		// exists to prevent. Wait for them; on timeout report, do not undo.
		if err := e.journal.done(c.intent); err != nil {
			return err
		}
		c.intent = nil
		if err := e.waitSettledByName(ctx, c.name); err != nil {
			return &keepError{fmt.Errorf("region %s was created and bound, but its devices did not finish registering: %w", c.name, err)}
		}
		return nil
	}
	return e.journal.done(c.intent)
}

// handshake claims a region name: read the offered name, write it back. An
// EBUSY means someone else took it first; read again and retry.
func (c *createRun) handshake(createAttr string) error {
	e := c.e
	for try := 1; ; try++ {
		offered, err := e.fs.ReadString(createAttr)
		if err != nil {
			return &KernelError{Op: "create", Step: "create_region", Attr: createAttr, Errno: errnoOf(err), Err: err}
		}
		if !sysfs.ValidRegionName(offered) {
			return fmt.Errorf("create_region offered %q, not a region name", offered)
		}
		c.intent.Name = offered
		if try == 1 {
			if err := e.journal.begin(c.intent); err != nil {
				return err
			}
		} else if err := e.journal.advance(c.intent, "begin"); err != nil {
			return err
		}
		// The name is marked as the daemon's only once the kernel has
		// given it to us: until then a region under it (the kernel's
		// auto-assembly took it first) is someone else's.
		err = c.tx.Write(createAttr, offered)
		if err == nil {
			c.name, c.created = offered, true
			e.markCreating(offered, true)
			break
		}
		if !errors.Is(err, unix.EBUSY) || try == handshakeTries {
			return kernelErr("create", "create_region", err)
		}
		time.Sleep(time.Duration(try) * time.Millisecond)
	}
	if err := e.journal.advance(c.intent, "created"); err != nil {
		return err
	}
	// Confirm the new region is ours: it exists under our root decoder.
	reg, err := e.fs.ReadRegion(c.name)
	if err != nil {
		return fmt.Errorf("region %s vanished after the handshake: %w", c.name, err)
	}
	if reg.RootDecoder != c.plan.root.Name {
		return fmt.Errorf("region %s appeared under %s, not %s", c.name, reg.RootDecoder, c.plan.root.Name)
	}
	e.adopt(c.name)
	return nil
}

// configure writes granularity, ways, uuid and size, in the order the
// kernel requires (size needs the other three).
func (c *createRun) configure() error {
	p := c.plan
	steps := []struct{ attr, value string }{
		{"interleave_granularity", strconv.Itoa(p.granularity)},
		{"interleave_ways", strconv.Itoa(p.ways)},
	}
	if p.typ == "pmem" {
		steps = append(steps, struct{ attr, value string }{"uuid", p.uuid})
	}
	steps = append(steps, struct{ attr, value string }{"size", strconv.FormatUint(p.size, 10)})
	for _, s := range steps {
		if err := c.write(s.attr, c.regionAttr(s.attr), s.value); err != nil {
			return err
		}
		if s.attr == "size" {
			c.sized = true
		}
	}
	return c.e.journal.advance(c.intent, "configured")
}

// attach allocates each target's DPA (mode first if it differs) and attaches
// it at its position.
func (c *createRun) attach() error {
	p := c.plan
	perWay := strconv.FormatUint(p.size/uint64(p.ways), 10)
	for pos, ed := range p.targets {
		if ed.DPASize == 0 || ed.Mode != p.typ {
			c.intent.Allocated = append(c.intent.Allocated, allocation{Decoder: ed.Name, OldMode: ed.Mode, Position: pos})
			if err := c.e.journal.advance(c.intent, "allocating"); err != nil {
				return err
			}
			if ed.Mode != p.typ {
				if ed.DPASize != 0 {
					if err := c.write(ed.Name+"/dpa_size", mustAttr(ed.Name, "dpa_size"), "0"); err != nil {
						return err
					}
				}
				if err := c.write(ed.Name+"/mode", mustAttr(ed.Name, "mode"), p.typ); err != nil {
					return err
				}
			}
			if err := c.write(ed.Name+"/dpa_size", mustAttr(ed.Name, "dpa_size"), perWay); err != nil {
				return err
			}
		}
		step := "target" + strconv.Itoa(pos)
		if err := c.write(step, c.regionAttr(step), ed.Name); err != nil {
			return err
		}
		c.targets = append(c.targets, pos)
	}
	return c.e.journal.advance(c.intent, "attached")
}

// rollback undoes what the run did, newest first: detach targets, free the
// DPA it allocated (restoring each decoder's mode), release the HPA, and
// delete the region it created. It is never called once the region is
// bound (see do).
func (c *createRun) rollback() error {
	if c.created {
		// Nothing of a region whose memory is online is undone (an
		// unbound region has no dax device, but a block left online by
		// an earlier region in this range would be hit by the reset).
		reg, err := c.e.fs.ReadRegion(c.name)
		if err != nil && !isNotExist(err) {
			return err
		}
		if err == nil {
			if err := c.e.memoryGate(context.Background(), c.tx, "rollback", reg, MemoryOptions{}); err != nil {
				return err
			}
		}
	}
	var errs []error
	if c.committed {
		errs = append(errs, c.write("rollback commit", c.regionAttr("commit"), "0"))
	}
	for _, pos := range slices.Backward(c.targets) {
		step := "target" + strconv.Itoa(pos)
		errs = append(errs, c.write("rollback "+step, c.regionAttr(step), ""))
	}
	if c.intent != nil {
		errs = append(errs, c.e.releaseAllocations(c.tx, c.intent.Allocated))
	}
	if c.sized {
		errs = append(errs, c.write("rollback size", c.regionAttr("size"), "0"))
	}
	if c.created {
		gen := c.e.generationOf(c.name)
		errs = append(errs, c.e.writeDeleteRegion(c.tx, c.plan.root.Name, c.name, gen))
		c.e.markCreating(c.name, false)
		_, _ = c.e.refreshRegion(c.name)
	}
	return errors.Join(errs...)
}

// releaseAllocations frees the DPA an operation allocated, highest decoder
// first as the kernel requires.
func (e *Engine) releaseAllocations(tx *lock.Tx, allocs []allocation) error {
	allocs = slices.Clone(allocs)
	slices.SortFunc(allocs, func(a, b allocation) int { return sysfs.CompareNames(b.Decoder, a.Decoder) })
	var errs []error
	for _, a := range allocs {
		errs = append(errs, e.releaseAllocation(tx, a))
	}
	return errors.Join(errs...)
}

// releaseAllocation frees a decoder's DPA and gives it back the mode it had.
func (e *Engine) releaseAllocation(tx *lock.Tx, a allocation) error {
	ed, err := e.fs.ReadEndpointDecoder(a.Decoder)
	if err != nil {
		return err
	}
	if ed.Region != "" {
		return nil
	}
	if ed.DPASize != 0 {
		if err := tx.Write(mustAttr(a.Decoder, "dpa_size"), "0"); err != nil {
			return kernelErr("rollback", a.Decoder+"/dpa_size", err)
		}
	}
	if a.OldMode != ed.Mode && (a.OldMode == "ram" || a.OldMode == "pmem") {
		if err := tx.Write(mustAttr(a.Decoder, "mode"), a.OldMode); err != nil {
			return kernelErr("rollback", a.Decoder+"/mode", err)
		}
	}
	return nil
}

func (c *createRun) regionAttr(attr string) string { return mustAttr(c.name, attr) }

func (c *createRun) write(step, attr, value string) error {
	if err := c.tx.Write(attr, value); err != nil {
		return kernelErr("create", step, err)
	}
	return nil
}

// mustAttr builds the path of an attribute of a device whose name was
// validated or read from sysfs; an invalid name yields a path that fails.
func mustAttr(dev, attr string) string {
	p, err := sysfs.DeviceAttr(dev, attr)
	if err != nil {
		return "invalid/" + attr
	}
	return p
}

func (e *Engine) markCreating(name string, on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if on {
		e.creating[name] = true
		return
	}
	delete(e.creating, name)
}

// adopt starts a new generation for a name the daemon's handshake has just
// claimed: whatever the model held under that name was an earlier region.
func (e *Engine) adopt(name string) {
	e.mu.Lock()
	var evs []Event
	if r, ok := e.regions[name]; ok {
		evs = e.removeRegionLocked(r)
	}
	e.mu.Unlock()
	e.hub.publish(evs...)
	_, _ = e.refreshRegion(name)
}

func (e *Engine) generationOf(name string) uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.regions[name]; ok {
		return r.gen
	}
	return 0
}

// waitSettledByName waits for the current generation of name to settle.
func (e *Engine) waitSettledByName(ctx context.Context, name string) error {
	r, err := e.refreshRegion(name)
	if err != nil {
		return err
	}
	e.markCreating(name, false)
	return e.waitSettled(ctx, name, r.gen)
}

// keepError marks a failure after which the region is kept, not rolled back.
type keepError struct{ err error }

func (k *keepError) Error() string { return k.err.Error() }
func (k *keepError) Unwrap() error { return k.err }

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
