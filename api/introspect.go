package api

import (
	_ "embed"
	"encoding/xml"
	"fmt"
	"sort"
	"strings"

	"github.com/godbus/dbus/v5/introspect"
)

// IntrospectionXML is the hand-written description of the interfaces, with
// argument names and documentation (godbus's reflection-based introspection
// loses both). It is the one place a method's signature or a property's
// type is written: the daemon builds its dispatch from it and refuses to
// start when a Go handler and the XML disagree (internal/service), and the
// tests' tables are read from it.
//
//go:embed io.github.cxlregion1.xml
var IntrospectionXML string

// The standard interfaces every object (or the root) also implements.
const standardXML = `<node>
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect">
      <arg name="xml_data" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
    <method name="GetMachineId">
      <arg name="machine_uuid" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="out"/>
    </method>
    <method name="GetAll">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="props" type="a{sv}" direction="out"/>
    </method>
    <method name="Set">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="in"/>
    </method>
    <signal name="PropertiesChanged">
      <arg name="interface_name" type="s"/>
      <arg name="changed_properties" type="a{sv}"/>
      <arg name="invalidated_properties" type="as"/>
    </signal>
  </interface>
  <interface name="org.freedesktop.DBus.ObjectManager">
    <method name="GetManagedObjects">
      <arg name="objects" type="a{oa{sa{sv}}}" direction="out"/>
    </method>
    <signal name="InterfacesAdded">
      <arg name="object_path" type="o"/>
      <arg name="interfaces_and_properties" type="a{sa{sv}}"/>
    </signal>
    <signal name="InterfacesRemoved">
      <arg name="object_path" type="o"/>
      <arg name="interfaces" type="as"/>
    </signal>
  </interface>
</node>`

type xmlNode struct {
	Interfaces []xmlInterface `xml:"interface"`
}

type xmlInterface struct {
	Name  string `xml:"name,attr"`
	Inner string `xml:",innerxml"`
}

// Arg is one argument of a method, as the XML names and types it.
type Arg struct {
	Name string
	Type string // a D-Bus signature
}

// Method is one method of an interface, as the XML declares it.
type Method struct {
	Interface string
	Name      string
	In        []Arg
	Out       []Arg
}

// InSignature is the D-Bus signature of the method's input arguments.
func (m Method) InSignature() string { return signature(m.In) }

// OutSignature is the D-Bus signature of the method's results.
func (m Method) OutSignature() string { return signature(m.Out) }

// InArgs describes the input arguments for messages: "s name, a{sv} options".
func (m Method) InArgs() string {
	parts := make([]string, len(m.In))
	for i, a := range m.In {
		parts[i] = a.Type + " " + a.Name
	}
	return strings.Join(parts, ", ")
}

func signature(args []Arg) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteString(a.Type)
	}
	return b.String()
}

// Interfaces is the parsed contract: every interface's XML, ours and the
// standard ones, so the daemon can describe any object, and their methods
// and property types, so it can dispatch and check what it exports.
type Interfaces struct {
	byName  map[string]string
	own     []string // the daemon's own interfaces, in XML order
	methods map[string][]Method
	props   map[string]map[string]string // interface → property → type
}

// ParseInterfaces reads the embedded XML. It fails only if the file in this
// package is broken, which the package's tests catch.
func ParseInterfaces() (*Interfaces, error) {
	return ParseInterfacesFrom(IntrospectionXML)
}

// ParseInterfacesFrom reads a document in place of the embedded XML (with
// the standard interfaces added): tests use it to show that a contract and
// handlers that drift apart are refused.
func ParseInterfacesFrom(doc string) (*Interfaces, error) {
	in := &Interfaces{byName: map[string]string{}, methods: map[string][]Method{}, props: map[string]map[string]string{}}
	for i, doc := range []string{doc, standardXML} {
		var n xmlNode
		if err := xml.Unmarshal([]byte(doc), &n); err != nil {
			return nil, fmt.Errorf("introspection XML: %w", err)
		}
		var typed introspect.Node
		if err := xml.Unmarshal([]byte(doc), &typed); err != nil {
			return nil, fmt.Errorf("introspection XML: %w", err)
		}
		for _, x := range n.Interfaces {
			if _, dup := in.byName[x.Name]; dup {
				return nil, fmt.Errorf("introspection XML: interface %s described twice", x.Name)
			}
			in.byName[x.Name] = "  <interface name=\"" + x.Name + "\">" + x.Inner + "</interface>\n"
		}
		for _, x := range typed.Interfaces {
			if i == 0 {
				in.own = append(in.own, x.Name)
			}
			if err := in.addInterface(x); err != nil {
				return nil, err
			}
		}
	}
	return in, nil
}

func (in *Interfaces) addInterface(x introspect.Interface) error {
	props := map[string]string{}
	for _, p := range x.Properties {
		if _, dup := props[p.Name]; dup {
			return fmt.Errorf("introspection XML: property %s.%s declared twice", x.Name, p.Name)
		}
		props[p.Name] = p.Type
	}
	in.props[x.Name] = props
	seen := map[string]bool{}
	for _, xm := range x.Methods {
		if seen[xm.Name] {
			return fmt.Errorf("introspection XML: method %s.%s declared twice", x.Name, xm.Name)
		}
		seen[xm.Name] = true
		m := Method{Interface: x.Name, Name: xm.Name}
		for _, a := range xm.Args {
			if a.Direction == "out" {
				m.Out = append(m.Out, Arg{a.Name, a.Type})
			} else {
				m.In = append(m.In, Arg{a.Name, a.Type})
			}
		}
		in.methods[x.Name] = append(in.methods[x.Name], m)
	}
	return nil
}

// Has reports whether the XML describes the interface.
func (in *Interfaces) Has(name string) bool {
	_, ok := in.byName[name]
	return ok
}

// Own lists the daemon's own interfaces (io.github.cxlregion1.*), in the
// order the XML declares them.
func (in *Interfaces) Own() []string { return append([]string(nil), in.own...) }

// Methods lists the methods of an interface, in the order the XML declares
// them.
func (in *Interfaces) Methods(iface string) []Method {
	return append([]Method(nil), in.methods[iface]...)
}

// Method finds one method.
func (in *Interfaces) Method(iface, name string) (Method, bool) {
	for _, m := range in.methods[iface] {
		if m.Name == name {
			return m, true
		}
	}
	return Method{}, false
}

// PropertyTypes returns an interface's properties and their D-Bus types.
func (in *Interfaces) PropertyTypes(iface string) map[string]string {
	out := make(map[string]string, len(in.props[iface]))
	for k, v := range in.props[iface] {
		out[k] = v
	}
	return out
}

// CheckProperties compares what an object exports for an interface (each
// property's D-Bus signature) with the XML: every declared property, each
// with its declared type, and no other. The error lists every difference.
func (in *Interfaces) CheckProperties(iface string, got map[string]string) error {
	want, ok := in.props[iface]
	if !ok {
		return fmt.Errorf("interface %s is not in the introspection XML", iface)
	}
	var diffs []string
	for name, typ := range want {
		g, ok := got[name]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s missing (XML: %s)", name, typ))
		case g != typ:
			diffs = append(diffs, fmt.Sprintf("%s has type %s, XML says %s", name, g, typ))
		}
	}
	for name, typ := range got {
		if _, ok := want[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s (%s) is not in the XML", name, typ))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	return fmt.Errorf("%s properties differ from the introspection XML: %s", iface, strings.Join(diffs, "; "))
}

// Node returns the introspection data of one object: its interfaces, the
// standard ones, and its child nodes (names relative to the object).
func (in *Interfaces) Node(ifaces, children []string) string {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"` + "\n" +
		` "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">` + "\n<node>\n")
	all := append([]string{IntrospectInterface, PeerInterface, PropertiesInterface}, ifaces...)
	for _, name := range all {
		b.WriteString(in.byName[name])
	}
	children = append([]string(nil), children...)
	sort.Slice(children, func(i, j int) bool { return NaturalLess(children[i], children[j]) })
	for _, c := range children {
		b.WriteString("  <node name=\"" + c + "\"/>\n")
	}
	b.WriteString("</node>\n")
	return b.String()
}
