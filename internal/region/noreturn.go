package region

import "context"

// pointOfNoReturnKey carries the function OnPointOfNoReturn registers.
type pointOfNoReturnKey struct{}

// OnPointOfNoReturn returns a context whose operation (Create, Delete)
// calls passed once, with the root decoder's writer held, just before the
// first write that cancelling ctx can no longer undo: a create's commit, a
// delete's unbind or delete_region. Until then cancelling ctx stops the
// operation and undoes what it wrote; from then on the operation finishes
// by itself. The D-Bus service uses it to turn a job's Cancelable false.
func OnPointOfNoReturn(ctx context.Context, passed func()) context.Context {
	return context.WithValue(ctx, pointOfNoReturnKey{}, passed)
}

// PointOfNoReturn is called by an operation (and by engine fakes that keep
// the same contract) at that point: it tells the caller, then reports
// whether ctx ended meanwhile, in which case the operation must stop and
// undo. A caller that serializes its cancel with passed (under one lock)
// thus either cancels in time and sees the operation stop, or learns it is
// too late; never both, never neither.
func PointOfNoReturn(ctx context.Context) error {
	if passed, ok := ctx.Value(pointOfNoReturnKey{}).(func()); ok && passed != nil {
		passed()
	}
	return ctx.Err()
}
