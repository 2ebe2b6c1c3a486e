package region

import (
	"context"
	"sync"
	"time"

	"github.com/cxlregion/cxlregiond/internal/uevent"
)

// EventKind says what an Event reports.
type EventKind int

const (
	RegionAdded EventKind = iota + 1
	RegionChanged
	RegionRemoved
	RootDecoderAdded
	RootDecoderChanged // also writer frozen/thawed and queue depth
	RootDecoderRemoved
	OperationDone
	UeventReceived
	Rescanned
	// JournalFailed: the intent journal could not write or sync a record
	// (Reason: the operation, Err: why). The operation that needed it
	// failed, and no operation starts until the journal is repaired.
	JournalFailed
)

func (k EventKind) String() string {
	switch k {
	case RegionAdded:
		return "region_added"
	case RegionChanged:
		return "region_changed"
	case RegionRemoved:
		return "region_removed"
	case RootDecoderAdded:
		return "root_decoder_added"
	case RootDecoderChanged:
		return "root_decoder_changed"
	case RootDecoderRemoved:
		return "root_decoder_removed"
	case OperationDone:
		return "operation_done"
	case UeventReceived:
		return "uevent_received"
	case Rescanned:
		return "rescanned"
	case JournalFailed:
		return "journal_failed"
	}
	return "unknown"
}

// Result is the bounded outcome label of an operation.
type Result string

const (
	ResultOK          Result = "ok"
	ResultNotFound    Result = "not_found"
	ResultBusy        Result = "busy"
	ResultFrozen      Result = "frozen"
	ResultInvalid     Result = "invalid"
	ResultTimeout     Result = "timeout"
	ResultKernelError Result = "kernel_error"
	ResultCanceled    Result = "canceled"
	ResultError       Result = "error"
)

// Operation reports a finished operation.
type Operation struct {
	Op       string // create, delete, enable, disable
	Target   string // region or root decoder name
	Result   Result
	Duration time.Duration
	// Joined is true for a delete request that joined one already in flight,
	// or that named a generation already deleted: a duplicate delete the
	// daemon suppressed.
	Joined bool
	Err    error
}

// Event is one change the engine reports to its subscribers.
type Event struct {
	Kind        EventKind
	Region      RegionInfo      // Region* kinds
	RootDecoder RootDecoderInfo // RootDecoder* kinds
	Operation   Operation       // OperationDone
	Uevent      uevent.Event    // UeventReceived
	Reason      string          // Rescanned: startup, overflow, gap, request, periodic, thaw; JournalFailed: create, delete, recover, generation, close
	Err         error           // JournalFailed
}

// hub fans events out to subscribers without ever blocking the engine: each
// subscriber has its own unbounded queue drained by its own goroutine.
type hub struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	mu     sync.Mutex
	queue  []Event
	wake   chan struct{}
	out    chan Event
	cancel context.CancelFunc
}

func (h *hub) publish(evs ...Event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.mu.Lock()
		s.queue = append(s.queue, evs...)
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// subscribe returns a channel of every event published from now on, in
// order, and a function that ends the subscription and closes the channel.
func (h *hub) subscribe(ctx context.Context) (<-chan Event, func()) {
	ctx, cancel := context.WithCancel(ctx)
	s := &subscriber{wake: make(chan struct{}, 1), out: make(chan Event), cancel: cancel}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = make(map[*subscriber]struct{})
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	go func() {
		defer close(s.out)
		defer func() {
			h.mu.Lock()
			delete(h.subs, s)
			h.mu.Unlock()
		}()
		for {
			s.mu.Lock()
			batch := s.queue
			s.queue = nil
			s.mu.Unlock()
			for _, ev := range batch {
				select {
				case s.out <- ev:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-s.wake:
			case <-ctx.Done():
				return
			}
		}
	}()
	return s.out, cancel
}
