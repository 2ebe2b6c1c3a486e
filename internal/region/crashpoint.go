package region

import "fmt"

// crashPoint is a place in a create or delete where a test may stop the
// engine dead, as a killed daemon would stop: between two journal records
// or kernel writes whose order recovery depends on. The set is closed:
// crashPoints lists every one, and the crash tests run each.
type crashPoint int

const (
	crashCreateBegin       crashPoint = iota + 1 // before the create's intent is written
	crashCreateCreated                           // the kernel gave the name
	crashCreateConfigured                        // granularity, ways, uuid, size written
	crashCreateAttached                          // DPA allocated, targets attached
	crashCreateCommitted                         // commit written
	crashCreateBound                             // bound, before the intent is done
	crashDeleteBegin                             // before the delete's intent is written
	crashDeleteJournaled                         // intent durable, nothing written
	crashDeleteUnbound                           // unbind written
	crashDeleteBeforeWrite                       // just before delete_region
	crashDeleteWritten                           // delete_region written, intent not done
	crashPointEnd
)

var crashPointNames = [...]string{
	crashCreateBegin: "create:begin", crashCreateCreated: "create:created",
	crashCreateConfigured: "create:configured", crashCreateAttached: "create:attached",
	crashCreateCommitted: "create:committed", crashCreateBound: "create:bound",
	crashDeleteBegin: "delete:begin", crashDeleteJournaled: "delete:journaled",
	crashDeleteUnbound: "delete:unbound", crashDeleteBeforeWrite: "delete:before-write",
	crashDeleteWritten: "delete:written",
}

func (p crashPoint) String() string {
	if p > 0 && p < crashPointEnd {
		return crashPointNames[p]
	}
	return fmt.Sprintf("crashPoint(%d)", int(p))
}

// isDelete tells the delete points from the create points.
func (p crashPoint) isDelete() bool { return p >= crashDeleteBegin && p < crashPointEnd }

// crashPoints returns every crash point, in the order an operation meets
// them.
func crashPoints() []crashPoint {
	out := make([]crashPoint, 0, crashPointEnd-1)
	for p := crashCreateBegin; p < crashPointEnd; p++ {
		out = append(out, p)
	}
	return out
}
