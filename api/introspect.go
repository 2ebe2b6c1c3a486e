package api

import (
	_ "embed"
	"encoding/xml"
	"fmt"
	"sort"
	"strings"
)

// IntrospectionXML is the hand-written description of the interfaces, with
// argument names and documentation (godbus's reflection-based introspection
// loses both).
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

// Interfaces holds every interface's XML, ours and the standard ones, so the
// daemon can describe any object.
type Interfaces struct {
	byName map[string]string
}

// ParseInterfaces reads the embedded XML. It fails only if the file in this
// package is broken, which the package's tests catch.
func ParseInterfaces() (*Interfaces, error) {
	in := &Interfaces{byName: map[string]string{}}
	for _, doc := range []string{IntrospectionXML, standardXML} {
		var n xmlNode
		if err := xml.Unmarshal([]byte(doc), &n); err != nil {
			return nil, fmt.Errorf("introspection XML: %w", err)
		}
		for _, i := range n.Interfaces {
			in.byName[i.Name] = "  <interface name=\"" + i.Name + "\">" + i.Inner + "</interface>\n"
		}
	}
	return in, nil
}

// Has reports whether the XML describes the interface.
func (in *Interfaces) Has(name string) bool {
	_, ok := in.byName[name]
	return ok
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
