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
	// SubscriberResync tells one subscriber that it fell so far behind that
	// its queue was dropped: events were lost, and it must read the model
	// afresh (Regions, RootDecoders) instead of trusting what it derived.
	SubscriberResync
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
	case SubscriberResync:
		return "subscriber_resync"
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

// DefaultSubscriberQueue bounds the events queued for one subscriber.
// A subscriber that stops reading (a stuck D-Bus client's signal path, a
// metrics reader) must not grow the daemon's memory: past the bound its
// queue is dropped and replaced by one SubscriberResync.
const DefaultSubscriberQueue = 4096

// hub fans events out to subscribers without ever blocking the engine: each
// subscriber has its own queue, at most limit events, drained by its own
// goroutine.
type hub struct {
	limit int // fixed before the first subscribe
	// overflowed, when set, is called once for each queue dropped
	// (a metric); fixed before the first subscribe.
	overflowed func()

	mu   sync.Mutex // guards subs
	subs map[*subscriber]struct{}
}

type subscriber struct {
	wake   chan struct{}
	out    chan Event
	cancel context.CancelFunc

	mu sync.Mutex // guards queue and resync
	// queue holds events not yet taken by the subscriber's goroutine.
	queue []Event
	// resync is set from a queue overflow until the subscriber's
	// goroutine takes its SubscriberResync: events in between are dropped,
	// since the subscriber re-reads the model anyway.
	resync bool
}

// subscribed reports whether anyone subscribes: an event nobody reads
// need not be worked out.
func (h *hub) subscribed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

func (h *hub) publish(evs ...Event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.mu.Lock()
		dropped := false
		switch {
		case s.resync:
		case len(s.queue)+len(evs) > h.limit:
			// A fresh slice: the old backing array is freed.
			s.queue = []Event{{Kind: SubscriberResync, Reason: "queue overflow"}}
			s.resync, dropped = true, true
		default:
			s.queue = append(s.queue, evs...)
		}
		s.mu.Unlock()
		if dropped && h.overflowed != nil {
			h.overflowed()
		}
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// subscribe returns a channel of every event published from now on, in
// order, and a function that ends the subscription and closes the channel.
// A subscriber that falls more than limit events behind gets one
// SubscriberResync in place of what it missed.
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
			if len(batch) > 0 && batch[0].Kind == SubscriberResync {
				// Events from now on queue behind the resync: none
				// published after the subscriber sees it is lost.
				s.resync = false
			}
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

// queued is how many events wait for a subscriber of h (tests).
func (h *hub) queued() (n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.mu.Lock()
		n += len(s.queue)
		s.mu.Unlock()
	}
	return n
}
