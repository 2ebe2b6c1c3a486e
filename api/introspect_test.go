package api

import (
	"encoding/xml"
	"sort"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5/introspect"
	"github.com/google/go-cmp/cmp"
)

func parseNode(t *testing.T, doc string) introspect.Node {
	t.Helper()
	var n introspect.Node
	if err := xml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatalf("parse XML: %v", err)
	}
	return n
}

func findIface(n introspect.Node, name string) *introspect.Interface {
	for i := range n.Interfaces {
		if n.Interfaces[i].Name == name {
			return &n.Interfaces[i]
		}
	}
	return nil
}

// The name constants daemon and CLI use must be the names the XML
// declares: a property or method renamed in one place and not the other
// fails here. Types and signatures are not repeated: they are read from
// the XML (Interfaces), by the daemon's dispatch and by the tests' tables.
func TestXMLMatchesConstants(t *testing.T) {
	contract, err := ParseInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	props := map[string][]string{
		ManagerInterface: {PropVersion, PropKernelFeatures, PropGuardActive, PropGuardQueue, PropSimulated, PropLockDirectory,
			PropMemdevCapacity, PropEndpointDecoders},
		RootDecoderInterface: {PropName, PropPort, PropPmemCapable, PropRAMCapable, PropSize, PropFreeCapacity,
			PropInterleaveWays, PropInterleaveGranularity, PropTargets, PropFrozen, PropFrozenReason, PropQueueDepth},
		RegionInterface: {PropName, PropRootDecoder, PropType, PropSize, PropResource, PropUUID, PropInterleaveWays,
			PropInterleaveGranularity, PropTargets, PropMemdevs, PropState, PropGeneration, PropOrigin, PropSettled,
			PropDaxMode, PropTargetNode, PropMemoryBlocks, PropOnlineMemoryBlocks, PropOnlineMemoryBytes, PropMovable},
		JobInterface: {PropOperation, PropObjects, PropProgress, PropStartedByUID, PropCancelable, PropFinished,
			PropSuccess, PropErrorName, PropMessage},
	}
	methods := map[string][]string{
		ManagerInterface:     {MethodCreateRegion, MethodDeleteRegion, MethodRefresh},
		RootDecoderInterface: {MethodCreateRegion},
		RegionInterface:      {MethodDelete, MethodEnable, MethodDisable},
		JobInterface:         {MethodCancel},
	}
	if got, want := strings.Join(contract.Own(), " "), strings.Join([]string{ManagerInterface, RootDecoderInterface, RegionInterface, JobInterface}, " "); got != want {
		t.Errorf("own interfaces %s, want %s", got, want)
	}
	for _, iface := range contract.Own() {
		var got []string
		for name := range contract.PropertyTypes(iface) {
			got = append(got, name)
		}
		if diff := cmp.Diff(sorted(props[iface]), sorted(got)); diff != "" {
			t.Errorf("%s properties: constants (-) vs XML (+):\n%s", iface, diff)
		}
		got = nil
		for _, m := range contract.Methods(iface) {
			got = append(got, m.Name)
		}
		if diff := cmp.Diff(sorted(methods[iface]), sorted(got)); diff != "" {
			t.Errorf("%s methods: constants (-) vs XML (+):\n%s", iface, diff)
		}
	}
	// Documentation and argument names are part of the contract.
	n := parseNode(t, IntrospectionXML)
	for _, iface := range n.Interfaces {
		for _, p := range iface.Properties {
			if p.Access != "read" {
				t.Errorf("%s.%s: access %q, want read", iface.Name, p.Name, p.Access)
			}
		}
		for _, m := range iface.Methods {
			for _, a := range m.Args {
				if a.Name == "" {
					t.Errorf("%s.%s: an argument has no name", iface.Name, m.Name)
				}
			}
			if len(m.Annotations) == 0 {
				t.Errorf("%s.%s has no documentation annotation", iface.Name, m.Name)
			}
		}
	}
	job := findIface(n, JobInterface)
	if job == nil || len(job.Signals) != 1 || job.Signals[0].Name != SignalCompleted {
		t.Fatalf("Job interface must have exactly the Completed signal")
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// Every method of the daemon's own interfaces takes its options last, as
// udisks2's do, and returns at most one value: what the daemon's dispatch
// and the CLI assume.
func TestMethodsTakeOptionsLast(t *testing.T) {
	contract, err := ParseInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, iface := range contract.Own() {
		for _, m := range contract.Methods(iface) {
			if m.Name == MethodRefresh {
				continue // takes nothing: a rescan has no options
			}
			if len(m.In) == 0 || m.In[len(m.In)-1] != (Arg{"options", "a{sv}"}) {
				t.Errorf("%s.%s takes (%s): want a{sv} options last", iface, m.Name, m.InArgs())
			}
			if len(m.Out) > 1 {
				t.Errorf("%s.%s returns %s: want at most one value", iface, m.Name, m.OutSignature())
			}
		}
	}
}

func TestCheckProperties(t *testing.T) {
	contract, err := ParseInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	full := contract.PropertyTypes(JobInterface)
	with := func(change func(map[string]string)) map[string]string {
		m := map[string]string{}
		for k, v := range full {
			m[k] = v
		}
		change(m)
		return m
	}
	for _, tt := range []struct {
		name  string
		iface string
		got   map[string]string
		want  string // substring of the error; "" for none
	}{
		{"exact", JobInterface, full, ""},
		{"missing", JobInterface, with(func(m map[string]string) { delete(m, PropCancelable) }), "Cancelable missing"},
		{"wrong type", JobInterface, with(func(m map[string]string) { m[PropProgress] = "u" }), "Progress has type u, XML says d"},
		{"extra", JobInterface, with(func(m map[string]string) { m["Percent"] = "d" }), "Percent (d) is not in the XML"},
		{"unknown interface", BusName + ".Nope", full, "not in the introspection XML"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := contract.CheckProperties(tt.iface, tt.got)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseInterfacesFrom(t *testing.T) {
	for _, tt := range []struct {
		name, doc, want string
	}{
		{"not XML", "<node", "introspection XML"},
		{"method twice", `<node><interface name="a.B"><method name="M"/><method name="M"/></interface></node>`, "method a.B.M declared twice"},
		{"property twice", `<node><interface name="a.B"><property name="P" type="s" access="read"/><property name="P" type="u" access="read"/></interface></node>`, "property a.B.P declared twice"},
		{"interface twice", `<node><interface name="a.B"/><interface name="a.B"/></node>`, "interface a.B described twice"},
		{"a standard interface again", `<node><interface name="` + PropertiesInterface + `"/></node>`, "described twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseInterfacesFrom(tt.doc); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	in, err := ParseInterfacesFrom(`<node><interface name="a.B"><method name="M"><arg name="x" type="s" direction="in"/><arg name="options" type="a{sv}"/><arg name="r" type="o" direction="out"/></method></interface></node>`)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := in.Method("a.B", "M")
	if !ok || m.InSignature() != "sa{sv}" || m.OutSignature() != "o" || m.InArgs() != "s x, a{sv} options" {
		t.Fatalf("M = %+v (in %q out %q)", m, m.InSignature(), m.OutSignature())
	}
	if got := in.Own(); len(got) != 1 || got[0] != "a.B" {
		t.Fatalf("Own() = %v", got)
	}
}

func TestNodeDescribesObject(t *testing.T) {
	in, err := ParseInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	doc := in.Node([]string{RegionInterface}, nil)
	n := parseNode(t, doc)
	for _, want := range []string{RegionInterface, PropertiesInterface, IntrospectInterface, PeerInterface} {
		if findIface(n, want) == nil {
			t.Errorf("Node() lacks %s:\n%s", want, doc)
		}
	}
	if findIface(n, ManagerInterface) != nil {
		t.Errorf("a region node must not describe the Manager")
	}
	if !strings.Contains(doc, `name="org.gtk.GDBus.DocString"`) {
		t.Errorf("documentation annotations lost")
	}
	root := parseNode(t, in.Node([]string{ObjectManagerInterface}, []string{"regions", "Manager", "root_decoders"}))
	if findIface(root, ObjectManagerInterface) == nil {
		t.Errorf("root node lacks the ObjectManager")
	}
	var kids []string
	for _, c := range root.Children {
		kids = append(kids, c.Name)
	}
	if strings.Join(kids, ",") != "Manager,regions,root_decoders" {
		t.Errorf("children = %v", kids)
	}
	for _, name := range []string{ManagerInterface, RootDecoderInterface, RegionInterface, JobInterface, ObjectManagerInterface} {
		if !in.Has(name) {
			t.Errorf("Has(%s) = false", name)
		}
	}
}
