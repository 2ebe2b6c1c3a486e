package service

import (
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
)

// request is one incoming method call, decoded.
type request struct {
	sender string
	path   dbus.ObjectPath
	member string
	args   []any
}

// handlerFunc serves a method; a non-nil error is a *dbus.Error.
type handlerFunc func(req *request) ([]any, *dbus.Error)

// method is a method of one of the service's interfaces. It decodes its own
// arguments (dbus.ArgumentDecoder): a call whose signature differs from
// the declared one is refused with InvalidArgument, naming both.
type method struct {
	name string
	in   string // the D-Bus signature of the input arguments
	args string // their names, for the error message
	fn   handlerFunc
}

func (m *method) DecodeArguments(_ *dbus.Conn, sender string, msg *dbus.Message, body []any) ([]any, error) {
	got := dbus.SignatureOf(body...).String()
	if got != m.in {
		return nil, invalidArg("%s takes (%s), got (%s)", m.name, m.args, got)
	}
	path, _ := msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
	return []any{&request{sender: sender, path: path, member: m.name, args: body}}, nil
}

func (m *method) Call(args ...any) ([]any, error) {
	req, ok := args[0].(*request)
	if !ok || len(args) != 1 {
		return nil, failed("internal: method %s called without its request", m.name)
	}
	ret, err := m.fn(req)
	if err != nil {
		return nil, err
	}
	return ret, nil
}

func (m *method) NumArguments() int     { return 1 }
func (m *method) NumReturns() int       { return 0 }
func (m *method) ArgumentValue(int) any { return nil }
func (m *method) ReturnValue(int) any   { return nil }
func (m *method) String() string        { return m.name }
func (m *method) Signature() dbus.Signature {
	sig, _ := dbus.ParseSignature(m.in)
	return sig
}

// iface is one interface of an object: its methods by name.
type iface map[string]*method

func (i iface) LookupMethod(name string) (dbus.Method, bool) {
	m, ok := i[name]
	return m, ok
}

// node is an object path as the handler serves it.
type node struct {
	ifaces map[string]iface
}

// LookupInterface finds an interface; a call without an interface name is
// served by the first interface that has the method, as the D-Bus
// specification allows.
func (n *node) LookupInterface(name string) (dbus.Interface, bool) {
	if name != "" {
		i, ok := n.ifaces[name]
		return i, ok
	}
	all := iface{}
	for _, i := range n.ifaces {
		for mname, m := range i {
			if _, dup := all[mname]; !dup {
				all[mname] = m
			}
		}
	}
	return all, true
}

// LookupObject implements dbus.Handler. Every path at or above an object
// is introspectable; region and root decoder paths of a well-formed name
// answer even when absent, so that a call on a region that is gone gets
// NotFound instead of the bus's generic UnknownObject.
func (s *Service) LookupObject(path dbus.ObjectPath) (dbus.ServerObject, bool) {
	n := &node{ifaces: map[string]iface{
		api.IntrospectInterface: {"Introspect": s.introspectMethod()},
		api.PropertiesInterface: s.propertiesMethods(),
	}}
	objIfaces, isObject := s.tree.interfaces(path)
	_, isRegion := api.RegionName(path)
	_, isRoot := api.RootDecoderName(path)
	switch {
	case path == api.RootPath:
		n.ifaces[api.ObjectManagerInterface] = iface{"GetManagedObjects": s.getManagedObjectsMethod()}
	case isObject, isRegion, isRoot:
	case len(s.tree.children(path)) > 0 || isAncestor(path, api.RootPath):
		return n, true
	default:
		return nil, false
	}
	if !isObject {
		// A region or root decoder that does not exist (any more): its
		// methods still answer, with NotFound.
		switch {
		case isRegion:
			objIfaces = []string{api.RegionInterface}
		case isRoot:
			objIfaces = []string{api.RootDecoderInterface}
		}
	}
	for _, name := range objIfaces {
		if ms := s.methodsOf(name); ms != nil {
			n.ifaces[name] = ms
		}
	}
	return n, true
}

func isAncestor(path dbus.ObjectPath, of string) bool {
	return path == "/" || strings.HasPrefix(of, string(path)+"/")
}

// methodsOf returns the methods of one of our interfaces.
func (s *Service) methodsOf(name string) iface {
	switch name {
	case api.ManagerInterface:
		return iface{
			api.MethodCreateRegion: {name: api.MethodCreateRegion, in: "sa{sv}", args: "s root_decoder, a{sv} options", fn: s.managerCreateRegion},
			api.MethodDeleteRegion: {name: api.MethodDeleteRegion, in: "sa{sv}", args: "s name, a{sv} options", fn: s.managerDeleteRegion},
			api.MethodRefresh:      {name: api.MethodRefresh, in: "", args: "", fn: s.managerRefresh},
		}
	case api.RootDecoderInterface:
		return iface{
			api.MethodCreateRegion: {name: api.MethodCreateRegion, in: "a{sv}", args: "a{sv} options", fn: s.rootDecoderCreateRegion},
		}
	case api.RegionInterface:
		return iface{
			api.MethodDelete:  {name: api.MethodDelete, in: "a{sv}", args: "a{sv} options", fn: s.regionDelete},
			api.MethodEnable:  {name: api.MethodEnable, in: "a{sv}", args: "a{sv} options", fn: s.regionEnable},
			api.MethodDisable: {name: api.MethodDisable, in: "a{sv}", args: "a{sv} options", fn: s.regionDisable},
		}
	case api.JobInterface:
		return iface{}
	}
	return nil
}

func (s *Service) introspectMethod() *method {
	return &method{name: "Introspect", in: "", fn: func(req *request) ([]any, *dbus.Error) {
		var ifaces []string
		if req.path == api.RootPath {
			ifaces = append(ifaces, api.ObjectManagerInterface)
		}
		if objIfaces, ok := s.tree.interfaces(req.path); ok {
			ifaces = append(ifaces, objIfaces...)
		}
		return []any{s.xml.Node(ifaces, s.tree.children(req.path))}, nil
	}}
}

func (s *Service) getManagedObjectsMethod() *method {
	return &method{name: "GetManagedObjects", in: "", fn: func(*request) ([]any, *dbus.Error) {
		return []any{s.tree.managed()}, nil
	}}
}

// propertiesMethods serves org.freedesktop.DBus.Properties from the tree:
// every property is read-only.
func (s *Service) propertiesMethods() iface {
	return iface{
		"Get": {name: "Get", in: "ss", args: "s interface_name, s property_name", fn: func(req *request) ([]any, *dbus.Error) {
			ifaceName, prop := req.args[0].(string), req.args[1].(string)
			p, err := s.propsOf(req.path, ifaceName)
			if err != nil {
				return nil, err
			}
			v, ok := p[prop]
			if !ok {
				return nil, &dbus.Error{Name: "org.freedesktop.DBus.Error.UnknownProperty",
					Body: []any{fmt.Sprintf("%s has no property %s", ifaceName, truncate(prop))}}
			}
			return []any{v}, nil
		}},
		"GetAll": {name: "GetAll", in: "s", args: "s interface_name", fn: func(req *request) ([]any, *dbus.Error) {
			p, err := s.propsOf(req.path, req.args[0].(string))
			if err != nil {
				return nil, err
			}
			return []any{p}, nil
		}},
		"Set": {name: "Set", in: "ssv", args: "s interface_name, s property_name, v value", fn: func(req *request) ([]any, *dbus.Error) {
			return nil, &dbus.Error{Name: "org.freedesktop.DBus.Error.PropertyReadOnly",
				Body: []any{fmt.Sprintf("property %s is read-only: every property of %s is", truncate(req.args[1].(string)), api.BusName)}}
		}},
	}
}

func (s *Service) propsOf(path dbus.ObjectPath, ifaceName string) (props, *dbus.Error) {
	if p, ok := s.tree.get(path, ifaceName); ok {
		return p, nil
	}
	if name, ok := api.RegionName(path); ok && ifaceName == api.RegionInterface {
		return nil, notFound("%s: no such region", name)
	}
	if name, ok := api.RootDecoderName(path); ok && ifaceName == api.RootDecoderInterface {
		return nil, notFound("%s: no such root decoder", name)
	}
	return nil, &dbus.Error{Name: "org.freedesktop.DBus.Error.UnknownInterface",
		Body: []any{fmt.Sprintf("object %s has no interface %s", path, truncate(ifaceName))}}
}
