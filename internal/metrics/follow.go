package metrics

import (
	"context"

	"github.com/cxlregion/cxlregiond/internal/region"
)

// Follow counts the engine's events until ctx ends or events is closed.
// It blocks; the caller owns the goroutine that runs it (typically with the
// channel from Engine.Subscribe).
func (m *Metrics) Follow(ctx context.Context, events <-chan region.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			m.observeEvent(ev)
		}
	}
}

func (m *Metrics) observeEvent(ev region.Event) {
	switch ev.Kind {
	case region.OperationDone:
		op := ev.Operation
		name := oneOf(op.Op, operations)
		m.operations.WithLabelValues(name, oneOf(op.Result, results)).Inc()
		m.operationSeconds.WithLabelValues(name).Observe(op.Duration.Seconds())
		if op.Joined {
			m.duplicateDeletes.Inc()
		}
	case region.UeventReceived:
		m.uevents.WithLabelValues(oneOf(ev.Uevent.Action, ueventActions)).Inc()
	case region.Rescanned:
		m.rescans.WithLabelValues(oneOf(ev.Reason, rescanReasons)).Inc()
		if lost := oneOf(ev.Reason, resyncReasons); lost != labelOther {
			m.resyncs.WithLabelValues(lost).Inc()
		}
	case region.JournalFailed:
		m.journalErrors.WithLabelValues(oneOf(ev.Reason, journalOperations)).Inc()
	}
}
