package api

import (
	"strings"
	"testing"

	"encoding/xml"
	"github.com/godbus/dbus/v5/introspect"
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

// The constants daemon and CLI use must match the XML clients see: a
// property renamed in one place and not the other fails here.
func TestXMLMatchesConstants(t *testing.T) {
	n := parseNode(t, IntrospectionXML)
	props := map[string]map[string]string{
		ManagerInterface: {
			PropVersion: "s", PropKernelFeatures: "as", PropGuardActive: "b", PropGuardQueue: "u", PropSimulated: "b",
		},
		RootDecoderInterface: {
			PropName: "s", PropPort: "s", PropPmemCapable: "b", PropRAMCapable: "b", PropSize: "t",
			PropFreeCapacity: "t", PropInterleaveWays: "u", PropInterleaveGranularity: "u",
			PropTargets: "as", PropFrozen: "b", PropFrozenReason: "s", PropQueueDepth: "u",
		},
		RegionInterface: {
			PropName: "s", PropRootDecoder: "s", PropType: "s", PropSize: "t", PropResource: "t",
			PropUUID: "s", PropInterleaveWays: "u", PropInterleaveGranularity: "u", PropTargets: "as",
			PropMemdevs: "as", PropState: "s", PropGeneration: "t", PropOrigin: "s", PropSettled: "b",
			PropDaxMode: "s", PropTargetNode: "i", PropMemoryBlocks: "u", PropOnlineMemoryBlocks: "u",
			PropOnlineMemoryBytes: "t", PropMovable: "b",
		},
		JobInterface: {
			PropOperation: "s", PropObjects: "ao", PropProgress: "d", PropStartedByUID: "u",
			PropCancelable: "b", PropFinished: "b", PropSuccess: "b", PropErrorName: "s", PropMessage: "s",
		},
	}
	methods := map[string]map[string]string{ // name -> in signature + "->" + out
		ManagerInterface:     {MethodCreateRegion: "sa{sv}->o", MethodDeleteRegion: "sa{sv}->o", MethodRefresh: "->"},
		RootDecoderInterface: {MethodCreateRegion: "a{sv}->o"},
		RegionInterface:      {MethodDelete: "a{sv}->o", MethodEnable: "a{sv}->o", MethodDisable: "a{sv}->o"},
		JobInterface:         {},
	}
	for ifaceName, want := range props {
		iface := findIface(n, ifaceName)
		if iface == nil {
			t.Errorf("interface %s missing from the XML", ifaceName)
			continue
		}
		got := map[string]string{}
		for _, p := range iface.Properties {
			got[p.Name] = p.Type
			if p.Access != "read" {
				t.Errorf("%s.%s: access %q, want read", ifaceName, p.Name, p.Access)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: XML has %d properties, constants %d", ifaceName, len(got), len(want))
		}
		for name, typ := range want {
			if got[name] != typ {
				t.Errorf("%s.%s: XML type %q, want %q", ifaceName, name, got[name], typ)
			}
		}
		gotM := map[string]string{}
		for _, m := range iface.Methods {
			var in, out strings.Builder
			for _, a := range m.Args {
				if a.Name == "" {
					t.Errorf("%s.%s: an argument has no name", ifaceName, m.Name)
				}
				if a.Direction == "out" {
					out.WriteString(a.Type)
				} else {
					in.WriteString(a.Type)
				}
			}
			gotM[m.Name] = in.String() + "->" + out.String()
			if len(m.Annotations) == 0 {
				t.Errorf("%s.%s has no documentation annotation", ifaceName, m.Name)
			}
		}
		if len(gotM) != len(methods[ifaceName]) {
			t.Errorf("%s: XML has methods %v, want %v", ifaceName, gotM, methods[ifaceName])
		}
		for name, sig := range methods[ifaceName] {
			if gotM[name] != sig {
				t.Errorf("%s.%s: XML signature %q, want %q", ifaceName, name, gotM[name], sig)
			}
		}
	}
	job := findIface(n, JobInterface)
	if job == nil || len(job.Signals) != 1 || job.Signals[0].Name != SignalCompleted {
		t.Fatalf("Job interface must have exactly the Completed signal")
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
