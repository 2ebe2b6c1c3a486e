package service

import (
	"errors"
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

// method is a method of one of the service's interfaces, its signature
// taken from the introspection XML (api.Method). It decodes its own
// arguments (dbus.ArgumentDecoder): a call whose signature differs from
// the declared one is refused with InvalidArgument, naming both.
type method struct {
	api.Method
	fn handlerFunc
}

func (m *method) DecodeArguments(_ *dbus.Conn, sender string, msg *dbus.Message, body []any) ([]any, error) {
	got := dbus.SignatureOf(body...).String()
	if got != m.InSignature() {
		return nil, invalidArg("%s takes (%s), got (%s)", m.Name, m.InArgs(), got)
	}
	path, _ := msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
	return []any{&request{sender: sender, path: path, member: m.Name, args: body}}, nil
}

// Call serves the method. A reply whose signature is not the XML's is
// never sent: it is a bug of the daemon, reported as Failed.
func (m *method) Call(args ...any) ([]any, error) {
	req, ok := args[0].(*request)
	if !ok || len(args) != 1 {
		return nil, failed("internal: method %s called without its request", m.Name)
	}
	ret, err := m.fn(req)
	if err != nil {
		return nil, err
	}
	if got := dbus.SignatureOf(ret...).String(); got != m.OutSignature() {
		return nil, failed("internal: %s.%s replied (%s), the introspection XML declares (%s)", m.Interface, m.Name, got, m.OutSignature())
	}
	return ret, nil
}

func (m *method) NumArguments() int     { return 1 }
func (m *method) NumReturns() int       { return 0 }
func (m *method) ArgumentValue(int) any { return nil }
func (m *method) ReturnValue(int) any   { return nil }
func (m *method) String() string        { return m.Name }
func (m *method) Signature() dbus.Signature {
	sig, _ := dbus.ParseSignature(m.InSignature())
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
		api.IntrospectInterface: s.dispatch[api.IntrospectInterface],
		api.PropertiesInterface: s.dispatch[api.PropertiesInterface],
	}}
	objIfaces, isObject := s.tree.interfaces(path)
	_, isRegion := api.RegionName(path)
	_, isRoot := api.RootDecoderName(path)
	isJob := api.IsJobPath(path)
	switch {
	case path == api.RootPath:
		n.ifaces[api.ObjectManagerInterface] = s.dispatch[api.ObjectManagerInterface]
	case isObject, isRegion, isRoot, isJob:
	case len(s.tree.children(path)) > 0 || isAncestor(path, api.RootPath):
		return n, true
	default:
		return nil, false
	}
	if !isObject {
		// A region, root decoder or job that does not exist (any more):
		// its methods still answer, with NotFound.
		switch {
		case isRegion:
			objIfaces = []string{api.RegionInterface}
		case isRoot:
			objIfaces = []string{api.RootDecoderInterface}
		case isJob:
			objIfaces = []string{api.JobInterface}
		}
	}
	for _, name := range objIfaces {
		if ms, ok := s.dispatch[name]; ok {
			n.ifaces[name] = ms
		}
	}
	return n, true
}

func isAncestor(path dbus.ObjectPath, of string) bool {
	return path == "/" || strings.HasPrefix(of, string(path)+"/")
}

// handlers names the Go function that serves each method. Only names are
// written here: every signature comes from the introspection XML, and
// buildDispatch refuses a handler without a method in the XML and a method
// of the daemon's interfaces without a handler. (org.freedesktop.DBus.Peer
// is godbus's own.)
func (s *Service) handlers() map[string]map[string]handlerFunc {
	return map[string]map[string]handlerFunc{
		api.ManagerInterface: {
			api.MethodCreateRegion: s.managerCreateRegion,
			api.MethodDeleteRegion: s.managerDeleteRegion,
			api.MethodRefresh:      s.managerRefresh,
		},
		api.RootDecoderInterface: {api.MethodCreateRegion: s.rootDecoderCreateRegion},
		api.RegionInterface: {
			api.MethodDelete:  s.regionDelete,
			api.MethodEnable:  s.regionEnable,
			api.MethodDisable: s.regionDisable,
		},
		api.JobInterface:           {api.MethodCancel: s.jobCancel},
		api.IntrospectInterface:    {"Introspect": s.introspect},
		api.ObjectManagerInterface: {"GetManagedObjects": s.getManagedObjects},
		api.PropertiesInterface: {
			"Get":    s.propertiesGet,
			"GetAll": s.propertiesGetAll,
			"Set":    s.propertiesSet,
		},
	}
}

// buildDispatch joins the handlers to the methods the XML declares. Every
// handler must have its method in the XML, and every method of the
// daemon's own interfaces its handler: a method added on one side only is
// an error naming it, so the daemon does not start with a contract it does
// not serve.
func buildDispatch(contract *api.Interfaces, handlers map[string]map[string]handlerFunc) (map[string]iface, error) {
	var errs []error
	out := map[string]iface{}
	for _, ifaceName := range sortedKeys(handlers) {
		if !contract.Has(ifaceName) {
			errs = append(errs, fmt.Errorf("handlers for interface %s, which the introspection XML does not declare", ifaceName))
			continue
		}
		out[ifaceName] = iface{}
		for _, name := range sortedKeys(handlers[ifaceName]) {
			m, ok := contract.Method(ifaceName, name)
			if !ok {
				errs = append(errs, fmt.Errorf("handler for %s.%s, which the introspection XML does not declare", ifaceName, name))
				continue
			}
			out[ifaceName][name] = &method{Method: m, fn: handlers[ifaceName][name]}
		}
	}
	for _, ifaceName := range contract.Own() {
		for _, m := range contract.Methods(ifaceName) {
			if _, ok := handlers[ifaceName][m.Name]; !ok {
				errs = append(errs, fmt.Errorf("method %s.%s is in the introspection XML but has no handler", ifaceName, m.Name))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("D-Bus contract and handlers differ: %w", err)
	}
	return out, nil
}

func (s *Service) introspect(req *request) ([]any, *dbus.Error) {
	var ifaces []string
	if req.path == api.RootPath {
		ifaces = append(ifaces, api.ObjectManagerInterface)
	}
	if objIfaces, ok := s.tree.interfaces(req.path); ok {
		ifaces = append(ifaces, objIfaces...)
	}
	return []any{s.xml.Node(ifaces, s.tree.children(req.path))}, nil
}

func (s *Service) getManagedObjects(*request) ([]any, *dbus.Error) {
	return []any{s.tree.managed()}, nil
}

// org.freedesktop.DBus.Properties is served from the tree: every property
// is read-only.

func (s *Service) propertiesGet(req *request) ([]any, *dbus.Error) {
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
}

func (s *Service) propertiesGetAll(req *request) ([]any, *dbus.Error) {
	p, err := s.propsOf(req.path, req.args[0].(string))
	if err != nil {
		return nil, err
	}
	return []any{p}, nil
}

func (s *Service) propertiesSet(req *request) ([]any, *dbus.Error) {
	return nil, &dbus.Error{Name: "org.freedesktop.DBus.Error.PropertyReadOnly",
		Body: []any{fmt.Sprintf("property %s is read-only: every property of %s is", truncate(req.args[1].(string)), api.BusName)}}
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
	if api.IsJobPath(path) && ifaceName == api.JobInterface {
		return nil, notFound("job %s does not exist", path)
	}
	return nil, &dbus.Error{Name: "org.freedesktop.DBus.Error.UnknownInterface",
		Body: []any{fmt.Sprintf("object %s has no interface %s", path, truncate(ifaceName))}}
}
