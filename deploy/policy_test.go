package deploy

import (
	"encoding/xml"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cxlregion/cxlregiond/api"
)

const policyFile = "dbus/io.github.cxlregion1.conf"

// busconfig is the part of dbus-daemon's configuration grammar a service
// policy file may use.
type busconfig struct {
	XMLName  xml.Name    `xml:"busconfig"`
	Policies []busPolicy `xml:"policy"`
}

type busPolicy struct {
	Context string    `xml:"context,attr"`
	User    string    `xml:"user,attr"`
	Group   string    `xml:"group,attr"`
	Console string    `xml:"at_console,attr"`
	Rules   []busRule `xml:",any"`
}

// busRule is one <allow> or <deny>. Attrs keeps every attribute, so that a
// rule using one the evaluator does not model is caught instead of being
// misjudged.
type busRule struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
}

func (r busRule) allow() bool { return r.XMLName.Local == "allow" }

func (r busRule) attr(name string) (string, bool) {
	for _, a := range r.Attrs {
		if a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

// The attributes the evaluator understands. Anything else fails the test.
var modelledAttrs = map[string]bool{
	"own": true, "send_destination": true, "send_interface": true, "send_member": true,
	"send_type": true, "receive_sender": true,
}

func loadPolicy(t *testing.T) busconfig {
	t.Helper()
	b, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg busconfig
	if err := xml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", policyFile, err)
	}
	for _, p := range cfg.Policies {
		for _, r := range p.Rules {
			if r.XMLName.Local != "allow" && r.XMLName.Local != "deny" {
				t.Fatalf("%s: <%s> in a policy: only allow and deny are expected", policyFile, r.XMLName.Local)
			}
			for _, a := range r.Attrs {
				if !modelledAttrs[a.Name.Local] {
					t.Fatalf("%s: rule attribute %q is not modelled by this test; extend the evaluator", policyFile, a.Name.Local)
				}
			}
		}
	}
	return cfg
}

// identity is a connection as dbus-daemon sees it.
type identity struct {
	name   string
	user   string
	groups []string
}

var (
	nobody   = identity{name: "an unprivileged user", user: "nobody", groups: []string{"nogroup"}}
	operator = identity{name: "a member of the cxl group", user: "alice", groups: []string{"alice", "cxl"}}
	root     = identity{name: "root", user: "root", groups: []string{"root"}}
)

// policiesFor returns the policies dbus-daemon applies to id, in its order:
// context="default", then the user's groups, then the user, then
// context="mandatory" (dbus-daemon(1), "policy").
func policiesFor(cfg busconfig, id identity) []busPolicy {
	var out []busPolicy
	pick := func(match func(busPolicy) bool) {
		for _, p := range cfg.Policies {
			if match(p) {
				out = append(out, p)
			}
		}
	}
	pick(func(p busPolicy) bool { return p.Context == "default" })
	pick(func(p busPolicy) bool { return p.Group != "" && slices.Contains(id.groups, p.Group) })
	pick(func(p busPolicy) bool { return p.User != "" && (p.User == id.user || p.User == "*") })
	pick(func(p busPolicy) bool { return p.Context == "mandatory" })
	return out
}

// call is a method call as the bus sees it. Interface may be empty: D-Bus
// lets a caller leave it out.
type call struct {
	iface, member string
}

func (c call) String() string {
	if c.iface == "" {
		return "(no interface)." + c.member
	}
	return c.iface + "." + c.member
}

// decision is what the policy file says: allow, deny, or nothing (the
// system bus's own default then applies, which denies method calls).
type decision int

const (
	unset decision = iota
	allowed
	denied
)

// canSend follows bus/policy.c bus_client_policy_check_can_send: the last
// matching send rule wins; an allow naming an interface never matches a
// call without one, a deny naming one does.
func canSend(cfg busconfig, id identity, c call) decision {
	d := unset
	for _, p := range policiesFor(cfg, id) {
		for _, r := range p.Rules {
			dest, hasDest := r.attr("send_destination")
			iface, hasIface := r.attr("send_interface")
			member, hasMember := r.attr("send_member")
			typ, hasType := r.attr("send_type")
			if !hasDest && !hasIface && !hasMember && !hasType {
				continue // not a send rule
			}
			if hasDest && dest != api.BusName && dest != "*" {
				continue
			}
			if hasType && typ != "method_call" && typ != "*" {
				continue
			}
			if hasIface && ((c.iface == "" && r.allow()) || (c.iface != "" && c.iface != iface)) {
				continue
			}
			if hasMember && member != c.member {
				continue
			}
			d = map[bool]decision{true: allowed, false: denied}[r.allow()]
		}
	}
	return d
}

// canOwn follows bus_client_policy_check_can_own: the last matching own
// rule wins.
func canOwn(cfg busconfig, id identity, name string) decision {
	d := unset
	for _, p := range policiesFor(cfg, id) {
		for _, r := range p.Rules {
			if own, ok := r.attr("own"); ok && (own == name || own == "*") {
				d = map[bool]decision{true: allowed, false: denied}[r.allow()]
			}
		}
	}
	return d
}

// apiMethods returns every method of the daemon's own interfaces, from the
// introspection XML in api/. All of them change the host.
func apiMethods(t *testing.T) []call {
	t.Helper()
	var node struct {
		Interfaces []struct {
			Name    string `xml:"name,attr"`
			Methods []struct {
				Name string `xml:"name,attr"`
			} `xml:"method"`
		} `xml:"interface"`
	}
	if err := xml.Unmarshal([]byte(api.IntrospectionXML), &node); err != nil {
		t.Fatalf("api introspection XML: %v", err)
	}
	var out []call
	for _, in := range node.Interfaces {
		if !strings.HasPrefix(in.Name, api.BusName+".") {
			continue
		}
		for _, m := range in.Methods {
			out = append(out, call{in.Name, m.Name})
		}
	}
	if len(out) == 0 {
		t.Fatal("api introspection XML has no methods of the daemon's interfaces")
	}
	return out
}

// The calls everyone may make: introspection, Peer, reading properties and
// the object tree.
var readCalls = []call{
	{api.IntrospectInterface, "Introspect"},
	{api.PeerInterface, "Ping"},
	{api.PeerInterface, "GetMachineId"},
	{api.PropertiesInterface, "Get"},
	{api.PropertiesInterface, "GetAll"},
	{api.ObjectManagerInterface, "GetManagedObjects"},
}

// The mutating methods the cxl group may call at bus level (the daemon
// checks again).
var operatorCalls = []call{
	{api.ManagerInterface, "CreateRegion"},
	{api.ManagerInterface, "DeleteRegion"},
	{api.ManagerInterface, "Refresh"},
	{api.RootDecoderInterface, "CreateRegion"},
	{api.RegionInterface, "Delete"},
	{api.RegionInterface, "Enable"},
	{api.RegionInterface, "Disable"},
	{api.JobInterface, "Cancel"},
}

func TestPolicyHasDefaultDeny(t *testing.T) {
	cfg := loadPolicy(t)
	var found bool
	for _, p := range cfg.Policies {
		if p.Context != "default" {
			continue
		}
		for i, r := range p.Rules {
			dest, _ := r.attr("send_destination")
			if !r.allow() && dest == api.BusName && len(r.Attrs) == 1 {
				found = true
				for _, earlier := range p.Rules[:i] {
					if earlier.allow() {
						t.Errorf("an allow rule %v precedes the blanket deny in context=default, which overrides it", earlier.Attrs)
					}
				}
			}
		}
	}
	if !found {
		t.Errorf(`no <deny send_destination=%q/> in a <policy context="default">: the policy does not fail closed`, api.BusName)
	}
}

func TestPolicySelectors(t *testing.T) {
	// Every policy must be one of the three this file means to have: a
	// stray user, group, at_console or mandatory policy could open a hole
	// the tests below do not look at.
	for _, p := range loadPolicy(t).Policies {
		switch {
		case p.Context == "default" && p.User == "" && p.Group == "" && p.Console == "":
		case p.Group == "cxl" && p.Context == "" && p.User == "" && p.Console == "":
		case p.User == "root" && p.Context == "" && p.Group == "" && p.Console == "":
		default:
			t.Errorf("unexpected policy context=%q user=%q group=%q at_console=%q", p.Context, p.User, p.Group, p.Console)
		}
	}
}

func TestPolicyOwnOnlyRoot(t *testing.T) {
	cfg := loadPolicy(t)
	tests := []struct {
		id   identity
		want decision
	}{
		{nobody, denied},
		{operator, denied},
		{root, allowed},
	}
	for _, tt := range tests {
		if got := canOwn(cfg, tt.id, api.BusName); got != tt.want {
			t.Errorf("%s owning %s: %v, want %v", tt.id.name, api.BusName, got, tt.want)
		}
	}
	for _, p := range cfg.Policies {
		for _, r := range p.Rules {
			if _, ok := r.attr("own"); ok && r.allow() && p.User != "root" {
				t.Errorf("own allowed in a policy that is not user=root: %+v", p)
			}
		}
	}
}

func TestPolicyFailsClosed(t *testing.T) {
	cfg := loadPolicy(t)
	type check struct {
		id   identity
		c    call
		want decision
	}
	var checks []check
	mutating := apiMethods(t)
	for _, c := range mutating {
		checks = append(checks,
			check{nobody, c, denied},
			check{nobody, call{"", c.member}, denied},
			check{root, c, allowed},
		)
	}
	for _, c := range operatorCalls {
		if !slices.Contains(mutating, c) {
			t.Errorf("the cxl group's %s is not a method of api/io.github.cxlregion1.xml", c)
		}
		checks = append(checks, check{operator, c, allowed}, check{operator, call{"", c.member}, denied})
	}
	for _, c := range readCalls {
		checks = append(checks, check{nobody, c, allowed}, check{operator, c, allowed}, check{root, c, allowed})
	}
	checks = append(checks,
		check{nobody, call{api.PropertiesInterface, "Set"}, denied},
		check{operator, call{api.PropertiesInterface, "Set"}, denied},
		// A method the API does not have yet is denied until this file
		// says otherwise.
		check{nobody, call{api.RegionInterface, "Resize"}, denied},
		check{operator, call{api.RegionInterface, "Resize"}, denied},
		check{nobody, call{"org.example.Evil", "Frob"}, denied},
	)
	names := map[decision]string{unset: "unset", allowed: "allowed", denied: "denied"}
	for _, ch := range checks {
		if got := canSend(cfg, ch.id, ch.c); got != ch.want {
			t.Errorf("%s calling %s: %s, want %s", ch.id.name, ch.c, names[got], names[ch.want])
		}
	}
}

func TestPolicyLetsClientsHearSignals(t *testing.T) {
	// PropertiesChanged, InterfacesAdded/Removed and Job.Completed reach
	// clients only if they may receive from the daemon.
	for _, p := range loadPolicy(t).Policies {
		if p.Context != "default" {
			continue
		}
		for _, r := range p.Rules {
			if s, ok := r.attr("receive_sender"); ok && s == api.BusName && r.allow() {
				return
			}
		}
	}
	t.Errorf(`no <allow receive_sender=%q/> in context="default"`, api.BusName)
}
