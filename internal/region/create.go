package region

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/devname"
	"github.com/cxlregion/cxlregiond/internal/journal"
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
func (e *Engine) Create(ctx context.Context, req CreateRequest) (RegionInfo, error) {
	return answerBy(e, ctx, "create", func() (RegionInfo, error) { return e.createRun(ctx, req) })
}

func (e *Engine) createRun(ctx context.Context, req CreateRequest) (info RegionInfo, err error) {
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
	if req.RootDecoder == "" {
		root, err := e.defaultRootDecoder(req)
		if err != nil {
			return RegionInfo{}, fmt.Errorf("create: %w", err)
		}
		req.RootDecoder = root
	}
	if _, err := e.RootDecoder(req.RootDecoder); err != nil {
		if errors.Is(err, ErrNotFound) {
			return RegionInfo{}, fmt.Errorf("create on %s: root decoder %w", req.RootDecoder, ErrNotFound)
		}
		return RegionInfo{}, fmt.Errorf("create on %s: %w", req.RootDecoder, err)
	}
	w, err := e.writers.Writer(req.RootDecoder)
	if err != nil {
		return RegionInfo{}, fmt.Errorf("create on %s: %w", req.RootDecoder, err)
	}
	ctx, cancel := e.withDefaultTimeout(ctx)
	defer cancel()
	var name string
	err = w.Do(ctx, func(ctx context.Context, tx *lock.Tx) error {
		var err error
		name, err = e.createUnderWriter(ctx, tx, req)
		e.storeTopology()
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

// defaultRootDecoder is the first root decoder, in id order, that can hold
// the region (its type, targets and size, or any size when none is given),
// as `cxl create-region` without -d picks one. The choice is planned again
// under that root decoder's writer.
func (e *Engine) defaultRootDecoder(req CreateRequest) (string, error) {
	topo, err := e.fs.Scan()
	if err != nil {
		return "", err
	}
	roots := slices.Clone(topo.RootDecoders)
	slices.SortFunc(roots, func(a, b sysfs.RootDecoder) int { return sysfs.CompareNames(a.Name, b.Name) })
	var reasons []string
	busy := false
	for _, rd := range roots {
		try := req
		try.RootDecoder = rd.Name
		if _, err := planCreate(try, topo, func(string) bool { return false }); err != nil {
			busy = busy || errors.Is(err, ErrBusy)
			reasons = append(reasons, rd.Name+": "+err.Error())
			continue
		}
		return rd.Name, nil
	}
	kind := ErrInvalid
	if busy {
		kind = ErrBusy
	}
	if len(reasons) == 0 {
		return "", fmt.Errorf("no root decoder: %w", ErrNotFound)
	}
	return "", fmt.Errorf("no root decoder can hold the region (%s): %w", strings.Join(reasons, "; "), kind)
}

// createRun is one create in progress: what has been done, so a failure
// can undo exactly that, in reverse.
type createRun struct {
	e      *Engine
	tx     *lock.Tx
	plan   *createPlan
	intent *journal.Intent
	name   string
	claim  uint64 // the reading ticket taken just before the name was claimed

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
		if run.intent != nil && run.intent.ID != 0 {
			// Rolled back to nothing: recovery would find nothing to undo,
			// so this record may ride on the next sync.
			if jerr := e.journal.Done(run.intent, journal.Finished); jerr != nil {
				e.journalFailed("create", run.name, jerr)
				return "", fmt.Errorf("%w; and its rollback could not be journalled: %w", err, jerr)
			}
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
	c.intent = &journal.Intent{Op: journal.OpCreate, RootDecoder: p.root.Name, Type: p.typ, UUID: p.uuid, Size: p.size}
	for _, t := range p.targets {
		c.intent.Targets = append(c.intent.Targets, t.Name)
	}
	if e.crash(crashCreateBegin) {
		return errCrashed
	}
	if err := c.handshake(createAttr); err != nil {
		return err
	}
	if e.crash(crashCreateCreated) {
		return errCrashed
	}
	if err := c.configure(); err != nil {
		return err
	}
	if e.crash(crashCreateConfigured) {
		return errCrashed
	}
	if err := c.attach(); err != nil {
		return err
	}
	if e.crash(crashCreateAttached) {
		return errCrashed
	}
	if err := PointOfNoReturn(ctx); err != nil {
		return fmt.Errorf("before commit: %w", err)
	}
	if err := c.write("commit", c.regionAttr("commit"), "1"); err != nil {
		return err
	}
	c.committed = true
	if err := c.advance(journal.PhaseCommitted); err != nil {
		return err
	}
	if e.crash(crashCreateCommitted) {
		return errCrashed
	}
	if !c.plan.noBind {
		if err := c.write("bind", sysfs.RegionBindPath, c.name); err != nil {
			return err
		}
		if e.crash(crashCreateBound) {
			return errCrashed
		}
		// From here on a rollback would have to unbind or delete a region
		// whose devices may still be registering: the crash this daemon
		// exists to prevent. Wait for them; on timeout report, do not undo.
		e.recordMade(c.name)
		if err := e.journal.Done(c.intent, journal.Finished); err != nil {
			e.journalFailed("create", c.name, err)
			return &keepError{fmt.Errorf("region %s was created and bound, but the journal could not record it: %w", c.name, err)}
		}
		c.intent = nil
		if err := e.waitSettledByName(ctx, c.name); err != nil {
			return &keepError{fmt.Errorf("region %s was created and bound, but its devices did not finish registering: %w", c.name, err)}
		}
		return nil
	}
	e.recordMade(c.name)
	if err := e.journal.Done(c.intent, journal.Finished); err != nil {
		e.journalFailed("create", c.name, err)
		return &keepError{fmt.Errorf("region %s was created, but the journal could not record it: %w", c.name, err)}
	}
	return nil
}

// advance records the create's progress: written to the log before the
// next kernel write, durable with the next sync (see internal/journal).
func (c *createRun) advance(phase journal.Phase) error {
	if err := c.e.journal.Advance(c.intent, phase); err != nil {
		c.e.journalFailed("create", c.intent.Name, err)
		return err
	}
	return nil
}

// recordMade notes in the state directory that the daemon made a region,
// before its intent is closed, so that a restart still knows it as the
// daemon's. A failure is logged: the region is fine, and until the next
// successful record a restart may take it for the kernel's.
func (e *Engine) recordMade(name string) {
	reg, err := e.fs.ReadRegion(name)
	if err == nil {
		err = e.made.add(reg, func(r madeRecord) bool {
			e.mu.Lock()
			defer e.mu.Unlock()
			s, ok := e.regions[r.Name]
			return ok && recordOf(r.Boot, s.reg) == r
		})
	}
	if err != nil {
		e.log.Error("could not record the region as the daemon's; after a restart its origin may be wrong", "region", name, "err", err)
	}
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
		if !devname.IsRegion(offered) {
			return fmt.Errorf("create_region offered %q, not a region name", offered)
		}
		c.intent.Name = offered
		if try == 1 {
			// The create's one durable record, before its first kernel
			// write.
			if err := e.journal.Begin(c.intent); err != nil {
				e.journalFailed("create", offered, err)
				return fmt.Errorf("create not started: %w", err)
			}
		} else if err := c.advance(journal.PhaseBegin); err != nil {
			return err
		}
		// The name is marked as the daemon's only once the kernel has
		// given it to us: until then a region under it (the kernel's
		// auto-assembly took it first) is someone else's. A reading that
		// starts from here on and finds the name finds ours.
		claim := e.ticket()
		err = c.tx.Write(createAttr, offered)
		if err == nil {
			c.name, c.created, c.claim = offered, true, claim
			e.markCreating(offered, true)
			break
		}
		if !errors.Is(err, unix.EBUSY) || try == handshakeTries {
			return kernelErr("create", "create_region", err)
		}
		time.Sleep(time.Duration(try) * time.Millisecond)
	}
	if err := c.advance(journal.PhaseCreated); err != nil {
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
	e.adopt(c.name, c.claim)
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
	return c.advance(journal.PhaseConfigured)
}

// attach allocates each target's DPA (mode first if it differs) and attaches
// it at its position.
func (c *createRun) attach() error {
	p := c.plan
	perWay := strconv.FormatUint(p.size/uint64(p.ways), 10)
	for pos, ed := range p.targets {
		if ed.DPASize == 0 || ed.Mode != p.typ {
			c.intent.Allocated = append(c.intent.Allocated, journal.Allocation{Decoder: ed.Name, OldMode: ed.Mode, Position: pos})
			if err := c.advance(journal.PhaseAllocating); err != nil {
				return err
			}
			if ed.Mode != p.typ {
				if ed.DPASize != 0 {
					if err := c.write(ed.Name+"/dpa_size", attrPathOrInvalid(ed.Name, "dpa_size"), "0"); err != nil {
						return err
					}
				}
				if err := c.write(ed.Name+"/mode", attrPathOrInvalid(ed.Name, "mode"), p.typ); err != nil {
					return err
				}
			}
			if err := c.write(ed.Name+"/dpa_size", attrPathOrInvalid(ed.Name, "dpa_size"), perWay); err != nil {
				return err
			}
		}
		step := "target" + strconv.Itoa(pos)
		if err := c.write(step, c.regionAttr(step), ed.Name); err != nil {
			return err
		}
		c.targets = append(c.targets, pos)
	}
	return c.advance(journal.PhaseAttached)
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
func (e *Engine) releaseAllocations(tx *lock.Tx, allocs []journal.Allocation) error {
	allocs = slices.Clone(allocs)
	slices.SortFunc(allocs, func(a, b journal.Allocation) int { return sysfs.CompareNames(b.Decoder, a.Decoder) })
	var errs []error
	for _, a := range allocs {
		errs = append(errs, e.releaseAllocation(tx, a))
	}
	return errors.Join(errs...)
}

// releaseAllocation frees a decoder's DPA and gives it back the mode it had.
func (e *Engine) releaseAllocation(tx *lock.Tx, a journal.Allocation) error {
	ed, err := e.fs.ReadEndpointDecoder(a.Decoder)
	if err != nil {
		return err
	}
	if ed.Region != "" {
		return nil
	}
	if ed.DPASize != 0 {
		if err := tx.Write(attrPathOrInvalid(a.Decoder, "dpa_size"), "0"); err != nil {
			return kernelErr("rollback", a.Decoder+"/dpa_size", err)
		}
	}
	if a.OldMode != ed.Mode && (a.OldMode == "ram" || a.OldMode == "pmem") {
		if err := tx.Write(attrPathOrInvalid(a.Decoder, "mode"), a.OldMode); err != nil {
			return kernelErr("rollback", a.Decoder+"/mode", err)
		}
	}
	return nil
}

func (c *createRun) regionAttr(attr string) string { return attrPathOrInvalid(c.name, attr) }

func (c *createRun) write(step, attr, value string) error {
	if err := c.tx.Write(attr, value); err != nil {
		return kernelErr("create", step, err)
	}
	return nil
}

// attrPathOrInvalid returns the path of an attribute of a device whose
// name was validated or read from sysfs. It does not panic: an invalid name
// yields a path under invalid/ that does not exist, so the write fails
// (ENOENT) and the caller's error names the step.
func attrPathOrInvalid(dev, attr string) string {
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

// adopt makes the model's region under a name the daemon's handshake has
// just claimed the daemon's. A generation first read before the claim
// (ticket claim) was an earlier region and ends; one read since is the new
// region itself, seen through the kernel's add uevent before the handshake
// returned: it stays, so one create is one RegionAdded, and becomes the
// daemon's if that reading came before markCreating.
func (e *Engine) adopt(name string, claim uint64) {
	e.mu.Lock()
	var evs []Event
	if r, ok := e.regions[name]; ok {
		switch {
		case r.bornTicket <= claim:
			evs = e.removeRegionLocked(r)
		case r.origin != OriginDaemon:
			r.origin = OriginDaemon
			evs = []Event{{Kind: RegionChanged, Region: e.regionInfoLocked(r)}}
		}
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
