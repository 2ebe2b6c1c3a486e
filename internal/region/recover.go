package region

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/cxlregion/cxlregiond/internal/journal"
	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// recover finishes or rolls back what a previous run left in the journal.
// It runs after the first scan and under each root decoder's writer, so a
// previous daemon's last write (whose flock the kernel released only when
// that process was gone) has completed. It never repeats a delete blindly:
// a delete is written again only when the region is still there with the
// same identity, which proves the earlier write never took effect.
func (e *Engine) recover(ctx context.Context) error {
	var errs []error
	for _, in := range e.journal.Unfinished() {
		if in.BootID != "" && e.cfg.BootID != "" && in.BootID != e.cfg.BootID {
			// The kernel state this intent described went with the
			// reboot; a region under its name now is another one.
			e.log.Warn("journalled operation is from an earlier boot: closed, nothing written",
				"op", in.Op, "region", in.Name, "phase", in.Phase, "boot_id", in.BootID)
			if err := e.journal.Done(in, journal.Finished); err != nil {
				e.journalFailed("recover", in.Name, err)
				errs = append(errs, err)
			}
			continue
		}
		w, err := e.writers.Writer(in.RootDecoder)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = w.Do(ctx, func(ctx context.Context, tx *lock.Tx) error {
			switch in.Op {
			case journal.OpDelete:
				return e.recoverDelete(ctx, tx, in)
			case journal.OpCreate:
				return e.recoverCreate(ctx, tx, in)
			}
			return fmt.Errorf("unknown journal op %v", in.Op)
		})
		var mo *MemoryOnlineError
		if errors.As(err, &mo) {
			// Memory went online after the crash: nothing was written and
			// nothing will be. The operation's caller saw it fail; the
			// region stays as it is, and the intent is dropped.
			e.log.Error("journalled operation abandoned: the region's memory is online", "op", in.Op, "region", in.Name, "err", err)
			if err := e.journal.Done(in, journal.Failed); err != nil {
				e.journalFailed("recover", in.Name, err)
				errs = append(errs, err)
			}
			continue
		}
		if err != nil {
			e.log.Error("could not recover journalled operation", "op", in.Op, "region", in.Name, "err", err)
			errs = append(errs, fmt.Errorf("%s %s: %w", in.Op, in.Name, err))
			continue
		}
		e.log.Info("recovered journalled operation", "op", in.Op, "region", in.Name, "phase", in.Phase)
		if err := e.journal.Done(in, journal.Finished); err != nil {
			e.journalFailed("recover", in.Name, err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sameIdentity tells whether the region now in sysfs is the one an intent
// was about. The directory's inode number, when the intent has one, tells
// a region that reuses the name (same root, same HPA base, no uuid for
// ram) from the one the intent named.
func sameIdentity(in *journal.Intent, reg sysfs.Region) bool {
	if reg.RootDecoder != in.RootDecoder {
		return false
	}
	if in.Ino != 0 && reg.Ino != 0 && reg.Ino != in.Ino {
		return false
	}
	if in.UUID != "" && reg.UUID != "" && reg.UUID != in.UUID {
		return false
	}
	if in.Resource != 0 && reg.Resource != nil && *reg.Resource != in.Resource {
		return false
	}
	return true
}

// recoverDelete finishes a delete. Its phase is only a hint (a "written"
// record may be lost with the machine, see internal/journal): the
// decision to write delete_region rests on sysfs showing the same region
// still there, which proves no earlier write deleted it.
func (e *Engine) recoverDelete(ctx context.Context, tx *lock.Tx, in *journal.Intent) error {
	r, err := e.refreshRegion(in.Name)
	if err == nil && sameIdentity(in, r.reg) && in.Phase != journal.PhaseWritten {
		e.mu.Lock()
		gen, reg := r.gen, r.reg
		e.mu.Unlock()
		if err := e.waitSettled(ctx, in.Name, gen); err != nil {
			return err
		}
		if err := e.memoryGate(ctx, tx, "recover", reg, MemoryOptions{}); err != nil {
			return err
		}
		if reg.Driver != "" {
			if err := tx.Write(sysfs.RegionUnbindPath, in.Name); err != nil {
				return kernelErr("delete", "unbind", err)
			}
		}
		if err := e.writeDeleteRegion(tx, in.RootDecoder, in.Name, gen); err != nil {
			return err
		}
		_, _ = e.refreshRegion(in.Name)
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	e.freeDPA(tx, in.Targets)
	return nil
}

// recoverCreate rolls a half-made create back from what sysfs shows now.
func (e *Engine) recoverCreate(ctx context.Context, tx *lock.Tx, in *journal.Intent) error {
	r, err := e.refreshRegion(in.Name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err == nil && in.Phase != journal.PhaseBegin && sameIdentity(in, r.reg) {
		e.mu.Lock()
		gen, reg := r.gen, r.reg
		r.origin = OriginDaemon
		e.mu.Unlock()
		if reg.Driver != "" {
			// Bound: wait for its devices before taking it down.
			waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := e.waitSettled(waitCtx, in.Name, gen)
			cancel()
			if err != nil {
				return err
			}
		}
		if err := e.memoryGate(ctx, tx, "recover", reg, MemoryOptions{}); err != nil {
			return err
		}
		if reg.Driver != "" {
			if err := tx.Write(sysfs.RegionUnbindPath, in.Name); err != nil {
				return kernelErr("rollback", "unbind", err)
			}
		}
		if reg.Committed {
			if err := tx.Write(attrPathOrInvalid(in.Name, "commit"), "0"); err != nil {
				return kernelErr("rollback", "commit", err)
			}
		}
		for pos, t := range slices.Backward(reg.Targets) {
			if t == "" {
				continue
			}
			step := "target" + strconv.Itoa(pos)
			if err := tx.Write(attrPathOrInvalid(in.Name, step), ""); err != nil {
				return kernelErr("rollback", step, err)
			}
		}
		if err := e.writeDeleteRegion(tx, in.RootDecoder, in.Name, gen); err != nil {
			return err
		}
		_, _ = e.refreshRegion(in.Name)
	}
	// A crash in phase "begin" may have happened before or after the
	// handshake write; a region of that name with no configuration may then
	// be ours, but also another tool's. Leave it to its settle rule.
	return e.releaseAllocations(tx, in.Allocated)
}
