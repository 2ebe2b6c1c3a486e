package service

import (
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/service/dbustest"
)

// fakePolkit owns org.freedesktop.PolicyKit1 on the test bus and answers
// CheckAuthorization with a fixed decision, recording what it was asked.
type fakePolkit struct {
	allow bool
	mu    sync.Mutex
	asked []string // "kind name action"
}

func (p *fakePolkit) CheckAuthorization(subject polkitSubject, action string, details map[string]string, flags uint32, cancel string) (polkitResult, *dbus.Error) {
	name, _ := subject.Details["name"].Value().(string)
	p.mu.Lock()
	p.asked = append(p.asked, subject.Kind+" "+name+" "+action)
	p.mu.Unlock()
	return polkitResult{IsAuthorized: p.allow, Details: map[string]string{}}, nil
}

func startPolkit(t *testing.T, allow bool) *fakePolkit {
	t.Helper()
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	p := &fakePolkit{allow: allow}
	if err := conn.Export(p, polkitPath, "org.freedesktop.PolicyKit1.Authority"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(polkitName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: %v %v", polkitName, reply, err)
	}
	return p
}

// Without polkit, a caller that is not root can read everything and
// change nothing. Mutation: return uid, nil at the top of authorize and
// the calls reach the engine.
func TestNonRootIsDeniedWithoutPolkit(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	h := startService(t, eng, nil)
	_ = h
	res := runAsNobody(t)
	if res["GetManagedObjects"] != "ok 3" {
		t.Errorf("GetManagedObjects as nobody: %q, want ok with 3 objects", res["GetManagedObjects"])
	}
	for _, c := range dbustest.MutatingCalls() {
		if res[c.Name] != api.ErrorAccessDenied {
			t.Errorf("%s as nobody: %q, want %s", c.Name, res[c.Name], api.ErrorAccessDenied)
		}
	}
	if calls := eng.Calls(); len(calls) != 0 {
		t.Errorf("the engine saw %v", calls)
	}
}

func TestPolkitDecidesForNonRoot(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(map[bool]string{false: "denied", true: "granted"}[allow], func(t *testing.T) {
			eng := newFakeEngine()
			eng.addRegion("region0")
			h := startService(t, eng, nil)
			_ = h
			pk := startPolkit(t, allow)
			res := runAsNobody(t)
			for _, c := range dbustest.MutatingCalls() {
				denied := res[c.Name] == api.ErrorAccessDenied
				if denied == allow {
					t.Errorf("%s as nobody with polkit allow=%v: %q", c.Name, allow, res[c.Name])
				}
			}
			if got := len(eng.Calls()) > 0; got != allow {
				t.Errorf("engine calls %v with polkit allow=%v", eng.Calls(), allow)
			}
			pk.mu.Lock()
			defer pk.mu.Unlock()
			if len(pk.asked) != len(dbustest.MutatingCalls()) {
				t.Errorf("polkit asked %d times, want %d", len(pk.asked), len(dbustest.MutatingCalls()))
			}
			for _, a := range pk.asked {
				if a[:len("system-bus-name :")] != "system-bus-name :" || a[len(a)-len(api.PolkitAction):] != api.PolkitAction {
					t.Errorf("polkit asked %q, want a system-bus-name subject and %s", a, api.PolkitAction)
				}
			}
		})
	}
}

// Root is authorized without asking polkit.
func TestRootNeedsNoPolkit(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	h := startService(t, eng, nil)
	pk := startPolkit(t, false)
	if err := h.call(api.RegionsPath+"/region0", api.RegionInterface+".Disable", noOpts).Err; err != nil {
		t.Fatalf("Disable as root: %v", err)
	}
	pk.mu.Lock()
	defer pk.mu.Unlock()
	if len(pk.asked) != 0 {
		t.Errorf("polkit asked about root: %v", pk.asked)
	}
}

// A caller with the daemon's own uid is trusted: it could do whatever the
// daemon does anyway (a daemon on the simulator started by a user).
// Mutation: drop "|| uid == s.selfUID" from authorize.
func TestDaemonsOwnUIDIsTrusted(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	nobody := uint32(65534)
	h := startService(t, eng, func(c *Config) { c.selfUID = &nobody })
	_ = h
	res := runAsNobody(t)
	for _, c := range dbustest.MutatingCalls() {
		if res[c.Name] == api.ErrorAccessDenied {
			t.Errorf("%s as the daemon's own uid: %s", c.Name, res[c.Name])
		}
	}
	if len(eng.Calls()) == 0 {
		t.Error("no call reached the engine")
	}
}
