package region

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// errNotSettled is the reason a region may not be deleted yet.
type errNotSettled struct{ why string }

func (e errNotSettled) Error() string { return "not settled: " + e.why }

// settledLocked says whether the kernel's asynchronous work around a region
// is finished (guarantee 4), and if not, why.
//
// A region the daemon did not make may still be auto-assembling or being
// configured by another tool: it must be committed and bound, or unchanged
// for the settle window. A bound region must have finished registering the
// devices below it: deleting a pmem region whose nd region libnvdimm is
// still registering oopses 6.1 and 6.12 (NULL pointer dereference in
// kill_device ← nd_device_unregister ← unregister_region), even with every
// delete serialized. The last change must also be boundQuiet old, because
// the nd region's children appear after its bind.
func (e *Engine) settledLocked(r *regionState, now time.Time) error {
	quiet := now.Sub(r.changedAt)
	if r.origin != OriginDaemon && !(r.reg.Committed && r.reg.Driver != "") && quiet < e.settleWindow {
		return errNotSettled{fmt.Sprintf("made by %s, changed %s ago (settle window %s)", r.origin, quiet.Round(time.Millisecond), e.settleWindow)}
	}
	if r.reg.Driver == "" {
		return nil
	}
	switch r.reg.Type {
	case "ram":
		// The ram probe creates no dax region when the range is already
		// System RAM; then only time tells that it is done.
		if !r.reg.DaxRegionBound && !(r.reg.DaxRegion == "" && quiet >= e.settleWindow) {
			return errNotSettled{"dax region not registered yet"}
		}
	default:
		if !r.reg.NDRegionBound {
			return errNotSettled{"nd region not registered yet"}
		}
	}
	if quiet < e.boundQuiet {
		return errNotSettled{fmt.Sprintf("devices below the region changed %s ago", quiet.Round(time.Millisecond))}
	}
	return nil
}

// settleCheckAtLocked is the first moment after now at which settledLocked
// holds for r as it is, or zero if it holds already or if time alone never
// makes it hold (it needs a bind, a registration: a change, which the
// model reports as an event). Time enters the rule only as r's quiet time compared with the
// settle window and with boundQuiet, and the rule can only go from
// unsettled to settled as the quiet time grows, so the answer is the
// first of changedAt+settleWindow and changedAt+boundQuiet still ahead at
// which the rule holds. Asking settledLocked itself at each keeps one home
// for the rule.
func (e *Engine) settleCheckAtLocked(r *regionState, now time.Time) time.Time {
	if e.settledLocked(r, now) == nil {
		return time.Time{}
	}
	a, b := r.changedAt.Add(e.settleWindow), r.changedAt.Add(e.boundQuiet)
	if b.Before(a) {
		a, b = b, a
	}
	for _, at := range [...]time.Time{a, b} {
		if at.After(now) && e.settledLocked(r, at) == nil {
			return at
		}
	}
	return time.Time{}
}

// waitSettled re-reads a region until it has settled, its generation is
// gone, or ctx ends (then ErrBusy, saying why).
func (e *Engine) waitSettled(ctx context.Context, name string, gen uint64) error {
	for {
		changed := e.changedCh()
		r, err := e.refreshRegion(name)
		if err != nil {
			return err
		}
		e.mu.Lock()
		if r.gen != gen {
			e.mu.Unlock()
			return fmt.Errorf("region %s generation %d: %w", name, gen, ErrNotFound)
		}
		why := e.settledLocked(r, time.Now())
		e.mu.Unlock()
		if why == nil {
			return nil
		}
		t := time.NewTimer(e.cfg.SettlePoll)
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("region %s: %w: %v", name, ErrBusy, why)
			}
			return ctx.Err()
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// WaitRootSettled waits until every region of a root decoder has settled.
// The guard calls it before letting another process open delete_region:
// whatever that process deletes must not be mid-assembly or
// mid-registration. The model may lag the kernel (attribute writes and
// assembly steps emit no uevent), so each round reads the root decoder's
// regions from sysfs.
func (e *Engine) WaitRootSettled(ctx context.Context, rootDecoder string) error {
	for {
		changed := e.changedCh()
		pending, err := e.unsettledBelow(rootDecoder)
		if err != nil {
			return err
		}
		if len(pending) == 0 {
			return nil
		}
		t := time.NewTimer(e.cfg.SettlePoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("root decoder %s: regions %v not settled: %w", rootDecoder, pending, ErrBusy)
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// unsettledBelow reads a root decoder's regions afresh and names those that
// have not settled.
func (e *Engine) unsettledBelow(rootDecoder string) ([]string, error) {
	ticket := e.ticket()
	seq := e.seqnum()
	topo, err := e.fs.Scan()
	if err != nil {
		return nil, err
	}
	var evs []Event
	var pending []string
	e.mu.Lock()
	now := time.Now()
	seen := map[string]bool{}
	for _, reg := range topo.Regions {
		if reg.RootDecoder != rootDecoder {
			continue
		}
		seen[reg.Name] = true
		evs = append(evs, e.observeRegionLocked(reg, false, seq, ticket)...)
		if e.settledLocked(e.regions[reg.Name], now) != nil {
			pending = append(pending, reg.Name)
		}
	}
	for name, r := range e.regions {
		if r.reg.RootDecoder == rootDecoder && !seen[name] && !e.creating[name] && r.readTicket < ticket {
			evs = append(evs, e.removeRegionLocked(r)...)
		}
	}
	e.notifyLocked()
	e.mu.Unlock()
	e.hub.publish(evs...)
	return pending, nil
}

// SetSettle changes the settle window and the quiet time after bind (a
// config reload); zero leaves a value as it is. Waiting operations use the
// new values at their next check. Each region whose Settled or
// SettleCheckAt the change moves is reported (RegionChanged): a reader
// that showed them waits for the time it was told, not for a poll.
func (e *Engine) SetSettle(window, boundQuiet time.Duration) {
	type view struct {
		settled bool
		at      time.Time
	}
	e.mu.Lock()
	now := time.Now()
	before := make(map[*regionState]view, len(e.regions))
	for _, r := range e.regions {
		before[r] = view{e.settledLocked(r, now) == nil, e.settleCheckAtLocked(r, now)}
	}
	if window > 0 {
		e.settleWindow = window
	}
	if boundQuiet > 0 {
		e.boundQuiet = boundQuiet
	}
	var evs []Event
	for r, was := range before {
		if v := (view{e.settledLocked(r, now) == nil, e.settleCheckAtLocked(r, now)}); v.settled != was.settled || !v.at.Equal(was.at) {
			evs = append(evs, Event{Kind: RegionChanged, Region: e.regionInfoLocked(r)})
		}
	}
	e.notifyLocked()
	e.mu.Unlock()
	e.hub.publish(evs...)
}
