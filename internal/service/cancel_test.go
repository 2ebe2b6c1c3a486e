package service

import (
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/service/dbustest"
)

// startCreateJob starts a no_wait create and returns its Job.
func startCreateJob(t *testing.T, h *harness) dbus.ObjectPath {
	t.Helper()
	var job dbus.ObjectPath
	if err := h.call(api.ManagerPath, api.ManagerInterface+".CreateRegion", "decoder0.0",
		opts(api.OptSize, uint64(256<<20), api.OptNoWait, true)).Store(&job); err != nil {
		t.Fatal(err)
	}
	return job
}

func jobProp(t *testing.T, h *harness, job dbus.ObjectPath, name string) any {
	t.Helper()
	v, err := h.client.Object(api.BusName, job).GetProperty(api.JobInterface + "." + name)
	if err != nil {
		t.Fatalf("%s.%s: %v", job, name, err)
	}
	return v.Value()
}

// waitCancelableFalse waits for the PropertiesChanged that turns the job's
// Cancelable false.
func waitCancelableFalse(t *testing.T, sigs <-chan *dbus.Signal, job dbus.ObjectPath) {
	t.Helper()
	for {
		s := waitSignal(t, sigs, api.PropertiesInterface+".PropertiesChanged", job)
		if v, ok := s.Body[1].(map[string]dbus.Variant)[api.PropCancelable]; ok && v.Value() == false {
			return
		}
	}
}

// A create cancelled before its point of no return stops, adds no region,
// and its job completes with Cancelled. Mutation: drop j.cancel() from
// jobCancel and the create goes on to make region0.
func TestCancelStopsACreate(t *testing.T) {
	eng := newFakeEngine()
	eng.gate = make(chan struct{}) // the create waits before its commit
	h := startService(t, eng, func(c *Config) { c.JobGrace = 5 * time.Second })
	sigs := h.signals(t)
	job := startCreateJob(t, h)
	if jobProp(t, h, job, api.PropCancelable) != true {
		t.Fatal("a create job before commit is not Cancelable")
	}
	if err := h.call(job, api.JobInterface+"."+api.MethodCancel, noOpts).Err; err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	done := waitSignal(t, sigs, api.JobInterface+"."+api.SignalCompleted, job)
	if done.Body[0] != false || !strings.HasPrefix(done.Body[1].(string), api.ErrorCancelled+": ") {
		t.Errorf("Completed%v, want failure with %s", done.Body, api.ErrorCancelled)
	}
	j, err := api.DecodeJob(h.managed(t)[job][api.JobInterface])
	if err != nil {
		t.Fatal(err)
	}
	if !j.Finished || j.Success || j.ErrorName != api.ErrorCancelled || jobProp(t, h, job, api.PropCancelable) != false {
		t.Errorf("cancelled job = %+v, Cancelable %v", j, jobProp(t, h, job, api.PropCancelable))
	}
	if regions := eng.Regions(); len(regions) != 0 {
		t.Errorf("a cancelled create left %v", regions)
	}
	if err := h.call(job, api.JobInterface+"."+api.MethodCancel, noOpts).Err; dbustest.ErrName(err) != api.ErrorNotCancelable {
		t.Errorf("Cancel of a finished job: %v, want %s", err, api.ErrorNotCancelable)
	}
}

// Past its point of no return a create is no longer Cancelable (announced
// by PropertiesChanged), Cancel is refused with NotCancelable, and the
// create finishes. Mutation: drop the !j.cancelable case from jobCancel.
func TestCancelPastThePointOfNoReturnIsRefused(t *testing.T) {
	eng := newFakeEngine()
	eng.afterCommit = make(chan struct{})
	h := startService(t, eng, func(c *Config) { c.JobGrace = 5 * time.Second })
	sigs := h.signals(t)
	job := startCreateJob(t, h)
	waitCancelableFalse(t, sigs, job)
	err := h.call(job, api.JobInterface+"."+api.MethodCancel, noOpts).Err
	if dbustest.ErrName(err) != api.ErrorNotCancelable || !strings.Contains(err.Error(), "point of no return") {
		t.Errorf("Cancel past the point of no return: %v, want %s", err, api.ErrorNotCancelable)
	}
	close(eng.afterCommit)
	done := waitSignal(t, sigs, api.JobInterface+"."+api.SignalCompleted, job)
	if done.Body[0] != true {
		t.Errorf("Completed%v, want success", done.Body)
	}
	if regions := eng.Regions(); len(regions) != 1 {
		t.Errorf("regions after the create = %v", regions)
	}
}

// Jobs that cannot stop halfway are never Cancelable; a job that does not
// exist is NotFound; Cancel's options are checked like any method's.
func TestCancelRefusals(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	eng.gate = make(chan struct{})
	h := startService(t, eng, nil)
	var job dbus.ObjectPath
	if err := h.call(api.RegionsPath+"/region0", api.RegionInterface+".Enable", opts(api.OptNoWait, true)).Store(&job); err != nil {
		t.Fatal(err)
	}
	if jobProp(t, h, job, api.PropCancelable) != false {
		t.Error("an enable job is Cancelable")
	}
	for _, tt := range []struct {
		name string
		path dbus.ObjectPath
		opts map[string]dbus.Variant
		want string
	}{
		{"not cancelable", job, noOpts, api.ErrorNotCancelable},
		{"no such job", api.JobPath(99), noOpts, api.ErrorNotFound},
		{"unknown option", job, opts(api.OptTimeout, 1.0), api.ErrorInvalidArgument},
		{"option of the wrong type", job, opts(api.OptNoUserInteraction, "yes"), api.ErrorInvalidArgument},
	} {
		if got := dbustest.ErrName(h.call(tt.path, api.JobInterface+"."+api.MethodCancel, tt.opts).Err); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
	close(eng.gate)
}

// A caller that is not root (and has no polkit grant) cannot cancel
// another's job: AccessDenied, and the job runs on to success. Mutation:
// skip authorize in jobCancel.
func TestNonRootCannotCancel(t *testing.T) {
	eng := newFakeEngine()
	eng.gate = make(chan struct{})
	h := startService(t, eng, func(c *Config) { c.JobGrace = 5 * time.Second })
	sigs := h.signals(t)
	job := startCreateJob(t, h)
	if job != api.JobPath(1) {
		t.Fatalf("job %s, want %s: the one dbustest's Job.Cancel names", job, api.JobPath(1))
	}
	res := runAsNobody(t)
	if res["Job.Cancel"] != api.ErrorAccessDenied {
		t.Errorf("Job.Cancel as nobody: %q, want %s", res["Job.Cancel"], api.ErrorAccessDenied)
	}
	if jobProp(t, h, job, api.PropCancelable) != true || jobProp(t, h, job, api.PropFinished) != false {
		t.Error("a refused Cancel changed the job")
	}
	close(eng.gate)
	done := waitSignal(t, sigs, api.JobInterface+"."+api.SignalCompleted, job)
	if done.Body[0] != true {
		t.Errorf("Completed%v after a refused Cancel, want success", done.Body)
	}
}

// A delete job is Cancelable until its first write: cancelled while it
// waits, it stops, the region stays and the job reports Cancelled.
func TestCancelStopsADelete(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	eng.gate = make(chan struct{})
	h := startService(t, eng, func(c *Config) { c.JobGrace = 5 * time.Second })
	sigs := h.signals(t)
	var job dbus.ObjectPath
	if err := h.call(api.RegionsPath+"/region0", api.RegionInterface+".Delete", opts(api.OptNoWait, true)).Store(&job); err != nil {
		t.Fatal(err)
	}
	if jobProp(t, h, job, api.PropCancelable) != true {
		t.Fatal("a delete job before its first write is not Cancelable")
	}
	if err := h.call(job, api.JobInterface+"."+api.MethodCancel, noOpts).Err; err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	done := waitSignal(t, sigs, api.JobInterface+"."+api.SignalCompleted, job)
	if done.Body[0] != false || !strings.HasPrefix(done.Body[1].(string), api.ErrorCancelled+": ") {
		t.Errorf("Completed%v, want failure with %s", done.Body, api.ErrorCancelled)
	}
	if regions := eng.Regions(); len(regions) != 1 {
		t.Errorf("regions after a cancelled delete: %v", regions)
	}
}
