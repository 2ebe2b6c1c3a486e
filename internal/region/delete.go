package region

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/journal"
	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// deleteCall is one delete in flight for one generation; every request for
// that generation waits on it (coalesce) and receives its result.
type deleteCall struct {
	done   chan struct{}
	err    error
	joined int // requests waiting on it besides its leader (under Engine.mu)

	// request is the leader's context. Its cancellation stops the delete
	// until the delete's point of no return (its first write), unless
	// another request has joined: their delete goes on.
	request context.Context
	// Under Engine.mu.
	irrevocable bool // the first write is about to be or has been made
	abandoned   bool // stopped by the leader's cancellation before it
}

// Delete deletes a region: unbind if bound, one delete_region write, then
// the endpoint decoders' DPA is freed. Requests for a generation already
// being deleted join that delete; a generation already gone is NotFound.
func (e *Engine) Delete(ctx context.Context, req DeleteRequest) error {
	_, err := answerBy(e, ctx, "delete", func() (struct{}, error) { return struct{}{}, e.deleteRun(ctx, req) })
	return err
}

func (e *Engine) deleteRun(ctx context.Context, req DeleteRequest) (err error) {
	start := time.Now()
	joined := false
	defer func() {
		e.hub.publish(Event{Kind: OperationDone, Operation: Operation{
			Op: "delete", Target: req.Name, Result: resultOf(err), Duration: time.Since(start), Joined: joined, Err: err,
		}})
	}()
	if err := ValidateRegionName(req.Name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	ctx, cancel := e.withDefaultTimeout(ctx)
	defer cancel()

	call, leader, joinedGone, root, gen, err := e.coalesce(req)
	if errors.Is(err, ErrNotFound) && req.Generation == 0 && !joinedGone {
		// The region may be newer than the last uevent the engine applied;
		// sysfs is the truth.
		if _, rerr := e.refreshRegion(req.Name); rerr == nil {
			call, leader, joinedGone, root, gen, err = e.coalesce(req)
		}
	}
	if err != nil {
		joined = joinedGone
		return err
	}
	if !leader {
		joined = true
		select {
		case <-call.done:
			return call.err
		case <-ctx.Done():
			return fmt.Errorf("delete %s: %w", req.Name, ctxErr(ctx))
		}
	}
	// The leader's cancellation must not abort a delete that others have
	// joined, nor one past its first write; its deadline still bounds the
	// wait for the region to settle. Cancelled before that with no one
	// joined, the delete stops at once (Job.Cancel).
	key := genKey{req.Name, gen}
	opCtx := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		var c context.CancelFunc
		opCtx, c = context.WithDeadline(opCtx, dl)
		defer c()
	}
	opCtx, stopOp := context.WithCancel(opCtx)
	defer stopOp()
	call.request = ctx
	stopWatch := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.Canceled) && e.abandonDelete(call, key) {
			stopOp()
		}
	})
	defer stopWatch()
	call.err = e.runDelete(opCtx, call, root, req.Name, gen, req.Memory)
	e.mu.Lock()
	if e.deletes[key] == call {
		delete(e.deletes, key)
	}
	var evs []Event
	if r, ok := e.regions[req.Name]; ok && r.gen == gen {
		// An abandoned delete's generation may already have a new delete.
		r.deleting = e.deletes[key] != nil
		if call.err == nil {
			evs = e.removeRegionLocked(r)
		} else {
			evs = append(evs, Event{Kind: RegionChanged, Region: e.regionInfoLocked(r)})
		}
	}
	e.notifyLocked()
	e.mu.Unlock()
	e.hub.publish(evs...)
	close(call.done)
	return call.err
}

// coalesce finds or starts the delete of the generation a request names.
func (e *Engine) coalesce(req DeleteRequest) (call *deleteCall, leader, joinedGone bool, root string, gen uint64, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.regions[req.Name]
	gen = req.Generation
	if gen == 0 {
		if r == nil {
			return nil, false, false, "", 0, fmt.Errorf("delete %s: %w", req.Name, ErrNotFound)
		}
		gen = r.gen
	}
	key := genKey{req.Name, gen}
	if c := e.deletes[key]; c != nil {
		c.joined++
		return c, false, false, "", gen, nil
	}
	if r == nil || r.gen != gen {
		return nil, false, e.goneLocked(req.Name, gen), "", gen, fmt.Errorf("delete %s generation %d: %w", req.Name, gen, ErrNotFound)
	}
	call = &deleteCall{done: make(chan struct{})}
	e.deletes[key] = call
	r.deleting = true
	return call, true, false, r.reg.RootDecoder, gen, nil
}

// joinedDeletes says how many requests wait on the delete in flight for a
// generation besides its leader; tests use it to know a storm has arrived.
func (e *Engine) joinedDeletes(name string, gen uint64) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.deletes[genKey{name, gen}]; c != nil {
		return c.joined
	}
	return -1
}

// runDelete waits for the region to settle, then deletes it under its root
// decoder's writer. Settling may be undone between the wait and the turn
// (a foreign bind), so the writer checks again and, if needed, waits anew.
func (e *Engine) runDelete(ctx context.Context, call *deleteCall, root, name string, gen uint64, mem MemoryOptions) error {
	w, err := e.writers.Writer(root)
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	for {
		if err := e.frozenErr(root); err != nil {
			return fmt.Errorf("delete %s: %w", name, err)
		}
		if err := e.waitSettled(ctx, name, gen); err != nil {
			return fmt.Errorf("delete %s: %w", name, err)
		}
		err := w.Do(ctx, func(ctx context.Context, tx *lock.Tx) error {
			return e.deleteUnderWriter(ctx, tx, call, root, name, gen, mem)
		})
		var ns errNotSettled
		if errors.As(err, &ns) {
			continue
		}
		if err != nil {
			return fmt.Errorf("delete %s: %w", name, mapCtxErr(err))
		}
		return nil
	}
}

// deleteUnderWriter runs with the writer held: nothing else writes this root
// decoder's files until it returns.
func (e *Engine) deleteUnderWriter(ctx context.Context, tx *lock.Tx, call *deleteCall, root, name string, gen uint64, mem MemoryOptions) error {
	if err := e.checkRoot(root); err != nil {
		return err
	}
	// Identity is re-read under the lock: a name reused by a newer region
	// means the request's region is gone, and the new one is not touched.
	r, err := e.refreshRegion(name)
	if err != nil {
		return err
	}
	e.mu.Lock()
	if r.gen != gen || r.reg.RootDecoder != root {
		e.mu.Unlock()
		return fmt.Errorf("generation %d: %w", gen, ErrNotFound)
	}
	if why := e.settledLocked(r, time.Now()); why != nil {
		e.mu.Unlock()
		return why
	}
	reg := r.reg
	e.mu.Unlock()
	if reg.Locked != nil && *reg.Locked {
		return fmt.Errorf("region is locked by the platform and may never be destroyed: %w", ErrInvalid)
	}
	// Offlining the memory comes before the point of no return: it is
	// undone (the blocks put back online) when cancelled.
	if err := e.memoryGate(ctx, tx, "delete", reg, mem); err != nil {
		return err
	}
	if err := e.deletePointOfNoReturn(call, genKey{name, gen}); err != nil {
		return err
	}
	if e.crash(crashDeleteBegin) {
		return errCrashed
	}
	// The intent is the delete's one durable record, on disk before the
	// first kernel write; it carries the identity recovery checks before
	// it writes delete_region for this generation again.
	intent := &journal.Intent{Op: journal.OpDelete, RootDecoder: root, Name: name, Generation: gen, UUID: reg.UUID,
		Type: reg.Type, Ino: reg.Ino, Targets: reg.Targets}
	if reg.Resource != nil {
		intent.Resource = *reg.Resource
	}
	if err := e.journal.Begin(intent); err != nil {
		e.journalFailed("delete", name, err)
		return fmt.Errorf("delete not started: %w", err)
	}
	if e.crash(crashDeleteJournaled) {
		return errCrashed
	}
	if reg.Driver != "" {
		if err := tx.Write(sysfs.RegionUnbindPath, name); err != nil {
			return e.deleteFailed(intent, kernelErr("delete", "unbind", err))
		}
		if e.crash(crashDeleteUnbound) {
			return errCrashed
		}
	}
	if err := e.journal.Advance(intent, journal.PhaseDeleting); err != nil {
		e.journalFailed("delete", name, err)
		return e.deleteFailed(intent, fmt.Errorf("before delete_region: %w", err))
	}
	if e.crash(crashDeleteBeforeWrite) {
		return errCrashed
	}
	if err := e.writeDeleteRegion(tx, root, name, gen); err != nil {
		return e.deleteFailed(intent, err)
	}
	if e.crash(crashDeleteWritten) {
		return errCrashed
	}
	// Not durable until the next sync: if a crash loses it, recovery
	// finds this generation gone from sysfs (see internal/journal).
	if err := e.journal.Advance(intent, journal.PhaseWritten); err != nil {
		e.journalFailed("delete", name, err)
	}
	e.freeDPA(tx, reg.Targets)
	if err := e.journal.Done(intent, journal.Finished); err != nil {
		// The region is deleted: the caller's answer stays success, and
		// the journal's failure is surfaced on its own.
		e.journalFailed("delete", name, err)
	}
	return nil
}

// deleteFailed ends the intent of a delete that failed before its
// delete_region write took effect. The Failed record is made durable
// before the caller hears of the failure, so that a restart never resumes
// (re-issues) a delete its caller was told had failed. If that record
// cannot be written the journal's error is surfaced and joined to the
// caller's, and the journal refuses new operations until it is repaired.
func (e *Engine) deleteFailed(intent *journal.Intent, cause error) error {
	if err := e.journal.Done(intent, journal.Failed); err != nil {
		e.journalFailed("delete", intent.Name, err)
		return fmt.Errorf("%w; and its failure could not be journalled: %w", cause, err)
	}
	return cause
}

// deletePointOfNoReturn is called under the writer just before a delete's
// first write (unbind or delete_region), after which it cannot be stopped.
// It tells the leader's caller (PointOfNoReturn), then stops the delete if
// the leader was cancelled by then and no other request joined it.
func (e *Engine) deletePointOfNoReturn(call *deleteCall, key genKey) error {
	requestErr := PointOfNoReturn(call.request)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !call.abandoned && errors.Is(requestErr, context.Canceled) && call.joined == 0 {
		e.abandonLocked(call, key)
	}
	if call.abandoned {
		return fmt.Errorf("cancelled before its first write: %w", context.Canceled)
	}
	call.irrevocable = true
	return nil
}

// abandonDelete stops a delete whose leader was cancelled, unless it is
// past its point of no return or another request joined it. It reports
// whether it did.
func (e *Engine) abandonDelete(call *deleteCall, key genKey) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if call.irrevocable || call.abandoned || call.joined > 0 {
		return false
	}
	e.abandonLocked(call, key)
	return true
}

// abandonLocked marks a delete stopped and forgets it, so that a later
// request for the generation starts a delete of its own instead of joining
// one that will fail.
func (e *Engine) abandonLocked(call *deleteCall, key genKey) {
	call.abandoned = true
	if e.deletes[key] == call {
		delete(e.deletes, key)
	}
}

// writeDeleteRegion is the one place the engine writes delete_region. The
// write is made only for the name's live generation, and that generation
// is marked written before the write, so that whatever the write returns,
// no second write for it can follow (guarantee 2). A generation that ended
// since the identity check (a remove uevent, a rescan, a new region under
// the name) is not written: the name may now be a newer region's.
// Generation 0 is a create's rollback of the region it made under this
// writer before the model read it: there is no generation to check yet.
func (e *Engine) writeDeleteRegion(tx *lock.Tx, root, name string, gen uint64) error {
	attr, err := sysfs.DeviceAttr(root, "delete_region")
	if err != nil {
		return err
	}
	if gen != 0 {
		e.mu.Lock()
		r := e.regions[name]
		switch {
		case r == nil || r.gen != gen:
			e.mu.Unlock()
			return fmt.Errorf("generation %d is gone: %w", gen, ErrNotFound)
		case r.deleteWritten:
			e.mu.Unlock()
			return fmt.Errorf("generation %d already deleted: %w", gen, ErrNotFound)
		}
		r.deleteWritten = true
		e.mu.Unlock()
	}
	if err := tx.Write(attr, name); err != nil {
		if errors.Is(err, unix.ENODEV) {
			// Someone bypassing the daemon deleted it first; it is gone,
			// which is what was asked. Never retry.
			e.log.Warn("delete_region found no such region: deleted behind the daemon's back", "region", name)
			return nil
		}
		return kernelErr("delete", "delete_region", err)
	}
	// One line per write of the file whose races the daemon exists to
	// prevent: the journal then shows each region deleted once.
	e.log.Info("delete_region written", "region", name, "root_decoder", root, "generation", gen)
	return nil
}

// freeDPA gives back the capacity of the ports the deleted region used,
// which delete_region does not free. The kernel frees only a port's
// highest allocation (cxl_dpa_free), so each port is freed from its top
// down for as long as the top decoder holds no region: the region's own
// decoders when they are the top, and any capacity stranded below them by
// earlier deletes of lower regions. What stays stranded is logged with
// what frees it; it is derived from sysfs, so a restarted daemon knows it
// too (order.go).
func (e *Engine) freeDPA(tx *lock.Tx, targets []string) {
	e.noteDetached(targets)
	seen := map[string]bool{}
	for _, dec := range targets {
		port := portNumberOf(dec)
		if dec == "" || seen[port] {
			continue
		}
		seen[port] = true
		e.freePortFromTop(tx, port, "")
	}
}

// maxPortDecoders bounds the walk over a port's decoders (the HDM
// capability holds at most 32).
const maxPortDecoders = 32

// freePortFromTop frees the stranded capacity at the top of the port whose
// decoders are decoder<port>.0, .1, ...
func (e *Engine) freePortFromTop(tx *lock.Tx, port, deleted string) {
	var decs []sysfs.EndpointDecoder
	for i := range maxPortDecoders {
		ed, err := e.fs.ReadEndpointDecoder("decoder" + port + "." + strconv.Itoa(i))
		if err != nil {
			if !isNotExist(err) {
				e.log.Warn("could not read endpoint decoder to free its port's capacity", "port", port, "err", err)
				return
			}
			break
		}
		decs = append(decs, ed)
	}
	freed := map[string]bool{}
	for _, ed := range slices.Backward(decs) {
		if ed.DPASize == 0 {
			continue
		}
		if ed.Region != "" && ed.Region != deleted {
			break // everything below stays until this region goes
		}
		attr, err := sysfs.DeviceAttr(ed.Name, "dpa_size")
		if err != nil {
			e.log.Warn("could not free endpoint decoder capacity", "decoder", ed.Name, "err", err)
			return
		}
		if err := tx.Write(attr, "0"); err != nil {
			e.log.Warn("could not free endpoint decoder capacity", "decoder", ed.Name, "err", err)
			return
		}
		e.noteFreed(ed.Name)
		freed[ed.Name] = true
	}
	// What stays allocated without a region is stranded until the regions
	// above it go (the reading above, less what was just freed).
	for _, ed := range decs {
		if ed.DPASize != 0 && (ed.Region == "" || ed.Region == deleted) && !freed[ed.Name] {
			e.log.Info("capacity stranded until the regions above it are deleted",
				"decoder", ed.Name, "memdev", ed.Memdev, "bytes", ed.DPASize)
		}
	}
}

// checkRoot confirms, under the writer, that the root decoder still exists;
// if it is gone the writer freezes: its root is being torn down.
func (e *Engine) checkRoot(root string) error {
	if _, err := e.fs.ReadRootDecoder(root); err != nil {
		if isNotExist(err) {
			reason := fmt.Errorf("root decoder %s vanished from sysfs", root)
			e.freeze(root, reason)
			return &lock.FrozenError{Writer: root, Reason: reason}
		}
		return err
	}
	return e.frozenErr(root)
}

func (e *Engine) withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, e.cfg.DefaultTimeout)
}

// noteFreed records in the last topology reading that a decoder's capacity
// was given back, so that free capacity is reported as it now is without
// reading the whole tree again on every delete.
func (e *Engine) noteFreed(decoder string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.topo == nil {
		return
	}
	e.topoGen++
	for i := range e.topo.EndpointDecoders {
		if ed := &e.topo.EndpointDecoders[i]; ed.Name == decoder {
			ed.DPASize, ed.Region = 0, ""
		}
	}
}

// noteDetached records in the last topology reading that a deleted
// region's endpoint decoders, and the host bridge decoders of the region
// they served, no longer hold it.
func (e *Engine) noteDetached(targets []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.topo == nil {
		return
	}
	e.topoGen++
	gone := map[string]bool{}
	for i := range e.topo.EndpointDecoders {
		if ed := &e.topo.EndpointDecoders[i]; ed.Region != "" && slices.Contains(targets, ed.Name) {
			gone[ed.Region] = true
			ed.Region = ""
		}
	}
	for i := range e.topo.SwitchDecoders {
		if sd := &e.topo.SwitchDecoders[i]; gone[sd.Region] {
			sd.Region = ""
		}
	}
	e.topo.Regions = slices.DeleteFunc(slices.Clone(e.topo.Regions), func(r sysfs.Region) bool { return gone[r.Name] })
}
