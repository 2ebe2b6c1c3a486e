package service

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/region"
	"github.com/cxlregion/cxlregiond/internal/service/dbustest"
)

func TestManagedObjectsDescribeTheModel(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	h := startService(t, eng, nil)
	objs := h.managed(t)
	regions, err := api.DecodeRegions(objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(regions) != 1 || regions[0].Region != "region0" || regions[0].Generation != 1 ||
		regions[0].DecodeState != "commit" || len(regions[0].Mappings) != 1 || regions[0].Mappings[0].Memdev != "mem0" {
		t.Errorf("regions = %+v", regions)
	}
	st, err := api.DecodeStatus(objs[api.ManagerPath][api.ManagerInterface], objs)
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "test" || !st.Simulated || st.GuardActive || len(st.RootDecoders) != 1 ||
		st.RootDecoders[0].Decoder != "decoder0.0" || st.Regions != 1 {
		t.Errorf("status = %+v", st)
	}
	// Device capacity crosses the bus with its stranded bytes and decoders.
	if len(st.Memdevs) != 1 || st.Memdevs[0].Stranded != 256<<20 || len(st.Memdevs[0].Decoders) != 1 || !st.Memdevs[0].Decoders[0].Stranded {
		t.Errorf("memdevs = %+v", st.Memdevs)
	}
}

func TestGuardActiveComesFromConfig(t *testing.T) {
	h := startService(t, newFakeEngine(), func(c *Config) { c.GuardActive = func() bool { return true } })
	v, err := h.client.Object(api.BusName, api.ManagerPath).GetProperty(api.ManagerInterface + "." + api.PropGuardActive)
	if err != nil || v.Value() != true {
		t.Fatalf("GuardActive = %v, %v; want true", v, err)
	}
}

// cxlregionctl lock takes its lock directory from this property.
func TestLockDirectoryComesFromConfig(t *testing.T) {
	h := startService(t, newFakeEngine(), func(c *Config) { c.LockDirectory = "/run/test/lock" })
	v, err := h.client.Object(api.BusName, api.ManagerPath).GetProperty(api.ManagerInterface + "." + api.PropLockDirectory)
	if err != nil || v.Value() != "/run/test/lock" {
		t.Fatalf("LockDirectory = %v, %v; want /run/test/lock", v, err)
	}
}

func TestIntrospectionServesTheXML(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	h := startService(t, eng, nil)
	tests := []struct {
		path dbus.ObjectPath
		want []string
		not  []string
	}{
		{api.RootPath, []string{api.ObjectManagerInterface, `<node name="Manager"/>`, `<node name="regions"/>`, `<node name="root_decoders"/>`}, []string{api.RegionInterface}},
		{api.ManagerPath, []string{api.ManagerInterface, `arg name="root_decoder"`, "org.gtk.GDBus.DocString"}, []string{api.RegionInterface}},
		{api.RegionsPath, []string{`<node name="region0"/>`}, nil},
		{api.RegionsPath + "/region0", []string{api.RegionInterface, `name="Generation" type="t"`}, []string{api.ManagerInterface}},
		{"/", []string{`<node name="io"/>`}, nil},
	}
	for _, tt := range tests {
		var xml string
		if err := h.call(tt.path, api.IntrospectInterface+".Introspect").Store(&xml); err != nil {
			t.Errorf("Introspect %s: %v", tt.path, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(xml, w) {
				t.Errorf("Introspect %s lacks %s", tt.path, w)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(xml, n) {
				t.Errorf("Introspect %s has %s", tt.path, n)
			}
		}
	}
}

func TestCreateAndDeleteFollowedBySignals(t *testing.T) {
	h := startService(t, newFakeEngine(), nil)
	sigs := h.signals(t)
	var path dbus.ObjectPath
	err := h.call(api.ManagerPath, api.ManagerInterface+".CreateRegion", "decoder0.0",
		map[string]dbus.Variant{api.OptSize: dbus.MakeVariant(uint64(256 << 20))}).Store(&path)
	if err != nil {
		t.Fatal(err)
	}
	if path != api.RegionsPath+"/region0" {
		t.Fatalf("CreateRegion returned %s", path)
	}
	// The reply comes after the object is exported.
	if _, ok := h.managed(t)[path]; !ok {
		t.Fatalf("%s not exported when CreateRegion returned", path)
	}
	added := waitSignal(t, sigs, api.ObjectManagerInterface+".InterfacesAdded", api.RootPath)
	if added.Body[0].(dbus.ObjectPath) != path {
		t.Errorf("InterfacesAdded for %v", added.Body[0])
	}
	var job dbus.ObjectPath
	if err := h.call(api.ManagerPath, api.ManagerInterface+".DeleteRegion", "region0", noOpts).Store(&job); err != nil {
		t.Fatal(err)
	}
	if job != api.NoJob {
		t.Errorf("DeleteRegion without no_wait returned %s, want /", job)
	}
	removed := waitSignal(t, sigs, api.ObjectManagerInterface+".InterfacesRemoved", api.RootPath)
	if removed.Body[0].(dbus.ObjectPath) != path {
		t.Errorf("InterfacesRemoved for %v", removed.Body[0])
	}
	if _, ok := h.managed(t)[path]; ok {
		t.Errorf("%s still exported after delete", path)
	}
}

// A change in the engine reaches clients as PropertiesChanged carrying
// only what changed.
func TestPropertiesChangedCarriesOnlyChanges(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	h := startService(t, eng, nil)
	sigs := h.signals(t)
	eng.setState("region0", region.StateCommitted)
	s := waitSignal(t, sigs, api.PropertiesInterface+".PropertiesChanged", api.RegionsPath+"/region0")
	if s.Body[0].(string) != api.RegionInterface {
		t.Errorf("PropertiesChanged for interface %v", s.Body[0])
	}
	changed := s.Body[1].(map[string]dbus.Variant)
	if len(changed) != 1 || changed[api.PropState].Value() != "committed" {
		t.Errorf("changed = %v, want only State=committed", changed)
	}
}

// A name reused by the kernel is a new object: the old one is removed and
// the new one added, so a client never mistakes one for the other.
func TestNewGenerationIsANewObject(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	h := startService(t, eng, nil)
	sigs := h.signals(t)
	eng.addRegion("region0") // same name, next generation
	path := dbus.ObjectPath(api.RegionsPath + "/region0")
	removed := waitSignal(t, sigs, api.ObjectManagerInterface+".InterfacesRemoved", api.RootPath)
	added := waitSignal(t, sigs, api.ObjectManagerInterface+".InterfacesAdded", api.RootPath)
	if removed.Body[0] != path || added.Body[0] != path {
		t.Fatalf("removed %v, added %v", removed.Body[0], added.Body[0])
	}
	gen := added.Body[1].(map[string]map[string]dbus.Variant)[api.RegionInterface][api.PropGeneration]
	if gen.Value() != uint64(2) {
		t.Errorf("added generation %v, want 2", gen)
	}
}

func opts(kv ...any) map[string]dbus.Variant {
	m := map[string]dbus.Variant{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = dbus.MakeVariant(kv[i+1])
	}
	return m
}

// Bad input is refused with InvalidArgument before the engine sees it, and
// the service keeps serving.
func TestInvalidArgumentsNeverReachTheEngine(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	h := startService(t, eng, nil)
	long := strings.Repeat("a", 4096)
	size := uint64(256 << 20)
	create := api.ManagerInterface + ".CreateRegion"
	del := api.ManagerInterface + ".DeleteRegion"
	tests := []struct {
		name   string
		path   dbus.ObjectPath
		method string
		args   []any
		want   string // part of the message
	}{
		{"root ../", api.ManagerPath, create, []any{"../decoder0.0", opts(api.OptSize, size)}, "decoder name"},
		{"root newline", api.ManagerPath, create, []any{"decoder0.0\n", opts(api.OptSize, size)}, "decoder name"},
		{"root 4KiB", api.ManagerPath, create, []any{long, opts(api.OptSize, size)}, "decoder name"},
		{"root leading zero", api.ManagerPath, create, []any{"decoder00.0", opts(api.OptSize, size)}, "decoder name"}, // decoder0.0's second spelling
		{"target leading zero", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptTargets, []string{"decoder02.0"})}, "target 0"},
		{"size 0", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, uint64(0))}, "size 0"},
		{"size unaligned", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size+4096)}, "multiple of 256 MiB"},
		{"size as int32", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, int32(1))}, "must have D-Bus type t"},
		{"ways 0", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptWays, uint32(0))}, "interleave ways 0"},
		{"ways 17", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptWays, uint32(17))}, "interleave ways 17"},
		{"ways 5", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, 5*size, api.OptWays, uint32(5))}, "interleave ways 5"},
		{"ways as string", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptWays, "2")}, "must have D-Bus type u"},
		{"granularity 100", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptGranularity, uint32(100))}, "granularity 100"},
		{"type disk", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptType, "disk")}, "type"},
		{"uuid malformed", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptUUID, "not-a-uuid")}, "uuid"},
		{"uuid null", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptUUID, "00000000-0000-0000-0000-000000000000")}, "null uuid"},
		{"uuid for ram", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptType, "ram", api.OptUUID, "0ae1f9aa-7a1c-4e2b-9bb4-3b2f3e44a001")}, "only pmem"},
		{"target bad", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptTargets, []string{"../x"})}, "target 0"},
		{"target memdev with a leading zero", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptTargets, []string{"mem01"})}, "target 0"},
		{"target twice", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, 2*size, api.OptTargets, []string{"decoder2.0", "decoder2.0"})}, "twice"},
		{"targets vs ways", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, 2*size, api.OptWays, uint32(2), api.OptTargets, []string{"decoder2.0"})}, "1 targets for 2"},
		{"unknown option", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, "force", true)}, "unknown option"},
		{"delete-only option on create", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptGeneration, uint64(1))}, "unknown option"},
		{"timeout as uint32", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptTimeout, uint32(5))}, "must have D-Bus type d"},
		{"timeout 0", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptTimeout, 0.0)}, "timeout 0"},
		{"timeout negative", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptTimeout, -1.0)}, "timeout -1"},
		{"timeout 2 days", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptTimeout, 172800.0)}, "at most 86400"},
		{"no_wait as int", api.ManagerPath, create, []any{"decoder0.0", opts(api.OptSize, size, api.OptNoWait, int32(1))}, "must have D-Bus type b"},
		{"wrong signature", api.ManagerPath, create, []any{int32(7)}, "CreateRegion takes (s root_decoder, a{sv} options), got (i)"},
		{"missing options", api.ManagerPath, create, []any{"decoder0.0"}, "got (s)"},
		{"delete name ../", api.ManagerPath, del, []any{"../region0", noOpts}, "region name"},
		{"delete name newline", api.ManagerPath, del, []any{"region0\n", noOpts}, "region name"},
		{"delete name empty", api.ManagerPath, del, []any{"", noOpts}, "region name"},
		{"delete name 4KiB", api.ManagerPath, del, []any{long, noOpts}, "region name"},
		{"delete name leading zero", api.ManagerPath, del, []any{"region00", noOpts}, "region name"},
		{"delete generation 0", api.ManagerPath, del, []any{"region0", opts(api.OptGeneration, uint64(0))}, "generation 0"},
		{"delete generation as string", api.ManagerPath, del, []any{"region0", opts(api.OptGeneration, "1")}, "must have D-Bus type t"},
		{"delete create option", api.ManagerPath, del, []any{"region0", opts(api.OptSize, size)}, "unknown option"},
		{"region delete unknown", api.RegionsPath + "/region0", api.RegionInterface + ".Delete", []any{opts("force", true)}, "unknown option"},
		{"region enable generation", api.RegionsPath + "/region0", api.RegionInterface + ".Enable", []any{opts(api.OptGeneration, uint64(1))}, "unknown option"},
		{"root create bad", api.RootDecodersPath + "/decoder0_0", api.RootDecoderInterface + ".CreateRegion", []any{opts(api.OptSize, uint64(1))}, "size 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.call(tt.path, tt.method, tt.args...).Err
			var de dbus.Error
			if !errors.As(err, &de) || de.Name != api.ErrorInvalidArgument {
				t.Fatalf("err = %v (%s), want %s", err, dbustest.ErrName(err), api.ErrorInvalidArgument)
			}
			if !strings.Contains(de.Error(), tt.want) {
				t.Errorf("message %q does not mention %q", de.Error(), tt.want)
			}
			if len(de.Error()) > 400 {
				t.Errorf("message is %d bytes: a hostile argument leaked into it", len(de.Error()))
			}
		})
	}
	if calls := eng.Calls(); len(calls) != 0 {
		t.Errorf("the engine saw %v", calls)
	}
	// Still serving.
	if objs := h.managed(t); len(objs) == 0 {
		t.Error("no objects after the bad calls")
	}
}

func TestPropertiesAreReadOnly(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	h := startService(t, eng, nil)
	err := h.call(api.RegionsPath+"/region0", api.PropertiesInterface+".Set", api.RegionInterface, api.PropSize, dbus.MakeVariant(uint64(1))).Err
	if dbustest.ErrName(err) != "org.freedesktop.DBus.Error.PropertyReadOnly" {
		t.Errorf("Set: %v", err)
	}
	err = h.call(api.RegionsPath+"/region7", api.PropertiesInterface+".GetAll", api.RegionInterface).Err
	if dbustest.ErrName(err) != api.ErrorNotFound {
		t.Errorf("GetAll of a missing region: %v, want NotFound", err)
	}
}

// Every engine error reaches the caller as its typed D-Bus error. A
// journal that could not be written was the untyped Failed (issue 16); it
// is JournalError, also when it could not record the kernel's refusal,
// whose errno the message still names.
//
// Mutation: drop the region.ErrJournal case of errorFor (Failed, and
// KernelError for the refusal it could not record).
func TestEngineErrorsAreTyped(t *testing.T) {
	ke := &region.KernelError{Op: "delete", Step: "delete_region", Attr: "bus/cxl/devices/decoder0.0/delete_region", Errno: 6}
	// As the journal words it (journal.failLocked) and as the engine
	// wraps it: a create refused before its first write, and a delete
	// the kernel refused whose Failed record could not be written
	// (deleteFailed).
	full := fmt.Errorf("journal /var/lib/cxlregiond/journal: %w: %w", region.ErrJournal, unix.ENOSPC)
	notStarted := fmt.Errorf("create on decoder0.0: create not started: %w", full)
	unrecorded := fmt.Errorf("delete region0: %w; and its failure could not be journalled: %w", ke, full)
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("delete region0: %w", region.ErrNotFound), api.ErrorNotFound},
		{fmt.Errorf("delete region0: %w", region.ErrBusy), api.ErrorBusy},
		{fmt.Errorf("delete region0: %w", region.ErrFrozen), api.ErrorFrozen},
		{fmt.Errorf("delete region0: %w", region.ErrInvalid), api.ErrorInvalidArgument},
		{fmt.Errorf("delete region0: %w", region.ErrTimeout), api.ErrorTimeout},
		{fmt.Errorf("delete region0: %w", ke), api.ErrorKernelError},
		{errors.New("read sysfs: I/O error"), api.ErrorFailed},
		{notStarted, api.ErrorJournal},
		{unrecorded, api.ErrorJournal},
	}
	eng := newFakeEngine()
	eng.addRegion("region0")
	h := startService(t, eng, nil)
	for _, tt := range tests {
		eng.mu.Lock()
		eng.fail = tt.err
		eng.mu.Unlock()
		err := h.call(api.RegionsPath+"/region0", api.RegionInterface+".Disable", noOpts).Err
		if got := dbustest.ErrName(err); got != tt.want {
			t.Errorf("engine error %v: D-Bus error %s, want %s", tt.err, got, tt.want)
		}
		if tt.want == api.ErrorKernelError && !strings.Contains(err.Error(), "delete_region") {
			t.Errorf("kernel error message %q does not name the attribute", err)
		}
		if tt.want == api.ErrorJournal && !strings.Contains(err.Error(), "ENOSPC") && !strings.Contains(err.Error(), "no space left") {
			t.Errorf("journal error message %q does not name the errno", err)
		}
		if tt.err == unrecorded && !strings.Contains(err.Error(), "delete_region") {
			t.Errorf("journal error message %q does not name the kernel's refusal it could not record", err)
		}
	}
}

// Region.Delete without a generation pins the generation the object
// shows: the engine never deletes "whatever region0 is now".
func TestRegionDeletePinsGeneration(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region9") // generation 1
	eng.addRegion("region0") // generation 2
	h := startService(t, eng, nil)
	if err := h.call(api.RegionsPath+"/region0", api.RegionInterface+".Delete", noOpts).Err; err != nil {
		t.Fatal(err)
	}
	eng.mu.Lock()
	defer eng.mu.Unlock()
	if len(eng.deletes) != 1 || eng.deletes[0].Name != "region0" || eng.deletes[0].Generation != 2 || eng.deletes[0].Memory.Offline {
		t.Errorf("engine deletes = %+v, want region0 generation 2", eng.deletes)
	}
}

func TestMissingRegionIsNotFound(t *testing.T) {
	eng := newFakeEngine()
	h := startService(t, eng, nil)
	for _, m := range []string{".Delete", ".Enable", ".Disable"} {
		err := h.call(api.RegionsPath+"/region5", api.RegionInterface+m, noOpts).Err
		if dbustest.ErrName(err) != api.ErrorNotFound || !strings.Contains(err.Error(), "region5") {
			t.Errorf("%s on a missing region: %v, want NotFound naming region5", m, err)
		}
	}
	if calls := eng.Calls(); len(calls) != 0 {
		t.Errorf("the engine saw %v", calls)
	}
}

func TestNoWaitReturnsAJob(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	eng.gate = make(chan struct{})
	h := startService(t, eng, nil)
	sigs := h.signals(t)
	var job dbus.ObjectPath
	err := h.call(api.ManagerPath, api.ManagerInterface+".DeleteRegion", "region0", opts(api.OptNoWait, true)).Store(&job)
	if err != nil {
		t.Fatal(err)
	}
	if !api.IsJobPath(job) {
		t.Fatalf("no_wait returned %s, not a job", job)
	}
	props := h.managed(t)[job][api.JobInterface]
	j, err := api.DecodeJob(props)
	if err != nil {
		t.Fatal(err)
	}
	if j.Operation != "delete" || j.Finished || len(j.Objects) != 1 || j.Objects[0] != api.RegionsPath+"/region0" {
		t.Errorf("running job = %+v", j)
	}
	if uid := props[api.PropStartedByUID].Value(); uid != uint32(0) {
		t.Errorf("StartedByUID = %v", uid)
	}
	close(eng.gate)
	done := waitSignal(t, sigs, api.JobInterface+"."+api.SignalCompleted, job)
	if done.Body[0] != true || done.Body[1] != "" {
		t.Errorf("Completed%v, want (true, \"\")", done.Body)
	}
	removed := waitSignal(t, sigs, api.ObjectManagerInterface+".InterfacesRemoved", api.RootPath)
	for removed.Body[0] != job {
		removed = waitSignal(t, sigs, api.ObjectManagerInterface+".InterfacesRemoved", api.RootPath)
	}
}

func TestFailedJobReportsTheError(t *testing.T) {
	eng := newFakeEngine()
	eng.fail = fmt.Errorf("create on decoder0.0: %w", region.ErrFrozen)
	h := startService(t, eng, func(c *Config) { c.JobGrace = 5 * time.Second })
	sigs := h.signals(t)
	var job dbus.ObjectPath
	err := h.call(api.ManagerPath, api.ManagerInterface+".CreateRegion", "decoder0.0",
		opts(api.OptSize, uint64(256<<20), api.OptNoWait, true)).Store(&job)
	if err != nil {
		t.Fatal(err)
	}
	done := waitSignal(t, sigs, api.JobInterface+"."+api.SignalCompleted, job)
	if done.Body[0] != false || !strings.HasPrefix(done.Body[1].(string), api.ErrorFrozen+": ") {
		t.Errorf("Completed%v, want failure with %s", done.Body, api.ErrorFrozen)
	}
	j, err := api.DecodeJob(h.managed(t)[job][api.JobInterface])
	if err != nil {
		t.Fatal(err)
	}
	if !j.Finished || j.Success || j.ErrorName != api.ErrorFrozen || j.Progress != 1 {
		t.Errorf("finished job = %+v", j)
	}
}

func TestTimeoutOptionBoundsTheOperation(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	eng.gate = make(chan struct{}) // never opens
	h := startService(t, eng, nil)
	start := time.Now()
	err := h.call(api.RegionsPath+"/region0", api.RegionInterface+".Enable", opts(api.OptTimeout, 0.2)).Err
	if dbustest.ErrName(err) != api.ErrorTimeout {
		t.Errorf("err = %v, want Timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a 0.2 s timeout took %s", d)
	}
}

func TestNameTakenIsAnError(t *testing.T) {
	h := startService(t, newFakeEngine(), nil)
	_ = h
	svc, err := New(Config{Engine: newFakeEngine()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := dbus.ConnectSystemBus(dbus.WithHandler(svc))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := t.Context()
	if err := svc.Serve(ctx, conn, func() { t.Error("ready called although the name is taken") }); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("second Serve: %v, want ErrNameTaken", err)
	}
}

// On shutdown a running operation finishes; new ones are refused as Busy.
// Mutation: drop s.ops.Wait from shutdown and Serve returns before the
// operation is done.
func TestShutdownLetsRunningOperationsFinish(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	eng.gate = make(chan struct{})
	h := startService(t, eng, nil)
	result := make(chan error, 1)
	go func() { result <- h.call(api.RegionsPath+"/region0", api.RegionInterface+".Disable", noOpts).Err }()
	waitFor(t, func() bool { return len(eng.Calls()) == 1 })
	h.cancel()
	waitFor(t, func() bool {
		h.svc.mu.Lock()
		defer h.svc.mu.Unlock()
		return h.svc.closing
	})
	if err := h.call(api.RegionsPath+"/region0", api.RegionInterface+".Enable", noOpts).Err; dbustest.ErrName(err) != api.ErrorBusy {
		t.Errorf("call during shutdown: %v, want Busy", err)
	}
	select {
	case <-h.served:
		t.Fatal("Serve returned while an operation was running")
	case <-time.After(100 * time.Millisecond):
	}
	close(eng.gate)
	if err := <-result; err != nil {
		t.Errorf("the running operation failed: %v", err)
	}
	select {
	case err := <-h.served:
		h.served <- err
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the operation finished")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The configured default timeout applies to calls without a timeout option,
// and is read per call (a reloaded configuration applies at once).
func TestDefaultTimeoutIsReadPerCall(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	eng.gate = make(chan struct{}) // never opens
	var mu sync.Mutex
	def := time.Hour
	h := startService(t, eng, func(c *Config) {
		c.DefaultTimeout = func() time.Duration { mu.Lock(); defer mu.Unlock(); return def }
	})
	mu.Lock()
	def = 100 * time.Millisecond
	mu.Unlock()
	start := time.Now()
	err := h.call(api.RegionsPath+"/region0", api.RegionInterface+".Enable", noOpts).Err
	if dbustest.ErrName(err) != api.ErrorTimeout {
		t.Errorf("err = %v, want Timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a 100 ms default timeout took %s", d)
	}
}
