package region

import (
	"context"
	"fmt"
	"time"

	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// Enable binds a committed region to the cxl_region driver and waits until
// the devices below it are registered.
func (e *Engine) Enable(ctx context.Context, name string) error {
	return e.bindOp(ctx, "enable", name, MemoryOptions{})
}

// Disable unbinds a region. The region must have settled first: unbinding a
// pmem region whose nd region is still registering takes the same path as
// the delete that oopses the kernel.
func (e *Engine) Disable(ctx context.Context, name string) error {
	return e.DisableWith(ctx, name, MemoryOptions{})
}

// DisableWith is Disable with a choice for the region's online memory:
// refuse (the zero value) or offline it first.
func (e *Engine) DisableWith(ctx context.Context, name string, mem MemoryOptions) error {
	return e.bindOp(ctx, "disable", name, mem)
}

func (e *Engine) bindOp(ctx context.Context, op, name string, mem MemoryOptions) error {
	_, err := answerBy(e, ctx, op, func() (struct{}, error) { return struct{}{}, e.bindOpRun(ctx, op, name, mem) })
	return err
}

func (e *Engine) bindOpRun(ctx context.Context, op, name string, mem MemoryOptions) (err error) {
	start := time.Now()
	defer func() {
		e.hub.publish(Event{Kind: OperationDone, Operation: Operation{
			Op: op, Target: name, Result: resultOf(err), Duration: time.Since(start), Err: err,
		}})
	}()
	if err := ValidateRegionName(name); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	ctx, cancel := e.withDefaultTimeout(ctx)
	defer cancel()
	cur, err := e.Region(name)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	w, err := e.writers.Writer(cur.RootDecoder)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, name, err)
	}
	for {
		if op == "disable" {
			if err := e.waitSettled(ctx, name, cur.Generation); err != nil {
				return fmt.Errorf("%s %s: %w", op, name, err)
			}
		}
		err = w.Do(ctx, func(ctx context.Context, tx *lock.Tx) error {
			if err := e.checkRoot(cur.RootDecoder); err != nil {
				return err
			}
			r, err := e.refreshRegion(name)
			if err != nil {
				return err
			}
			e.mu.Lock()
			gen, reg := r.gen, r.reg
			var why error
			if op == "disable" {
				why = e.settledLocked(r, time.Now())
			}
			e.mu.Unlock()
			if gen != cur.Generation {
				return fmt.Errorf("generation %d: %w", cur.Generation, ErrNotFound)
			}
			if why != nil {
				return why
			}
			switch {
			case op == "enable" && reg.Driver != "":
				return nil
			case op == "enable" && !reg.Committed:
				return fmt.Errorf("region is not committed: %w", ErrInvalid)
			case op == "disable" && reg.Driver == "":
				return nil
			}
			path := sysfs.RegionBindPath
			if op == "disable" {
				path = sysfs.RegionUnbindPath
				if err := e.memoryGate(ctx, tx, op, reg, mem); err != nil {
					return err
				}
			}
			if err := tx.Write(path, name); err != nil {
				return kernelErr(op, op, err)
			}
			if op == "enable" {
				return e.waitSettled(ctx, name, gen)
			}
			return nil
		})
		if _, ok := err.(errNotSettled); ok {
			continue
		}
		break
	}
	_, _ = e.refreshRegion(name)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, name, mapCtxErr(err))
	}
	return nil
}
