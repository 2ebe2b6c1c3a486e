package guard

import (
	"context"
	"errors"
	"fmt"

	"github.com/cxlregion/cxlregiond/internal/lock"
)

// LockWriters adapts the daemon's writer registry: the guard takes the
// same writers, in the same FIFO, as the daemon's own operations.
func LockWriters(reg *lock.Registry) Writers { return registryWriters{reg} }

type registryWriters struct{ reg *lock.Registry }

func (r registryWriters) Acquire(ctx context.Context, rootDecoder string) (func(), error) {
	w, err := r.reg.Writer(rootDecoder)
	if err != nil {
		return nil, err
	}
	h, err := w.Acquire(ctx)
	if errors.Is(err, lock.ErrFrozen) {
		return nil, fmt.Errorf("%w: %w", ErrWriterFrozen, err)
	}
	if err != nil {
		return nil, err
	}
	return h.Release, nil
}

func (r registryWriters) TryAcquire(rootDecoder string) (func(), bool) {
	w, err := r.reg.Writer(rootDecoder)
	if err != nil {
		return nil, false
	}
	h := w.TryAcquire()
	if h == nil {
		return nil, false
	}
	return h.Release, true
}

func (r registryWriters) LockPath(rootDecoder string) (string, error) {
	w, err := r.reg.Writer(rootDecoder)
	if err != nil {
		return "", err
	}
	return w.LockPath(), nil
}
