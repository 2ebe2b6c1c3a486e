package dbustest

import (
	"errors"
	"fmt"
	"strings"

	godbus "github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
)

// Call is one method call of the API, named for test output.
type Call struct {
	Name   string
	Path   godbus.ObjectPath
	Method string
	Args   []any
}

// Sample objects the calls name: region0 under decoder0.0, and job 1.
var (
	samplePaths = map[string]godbus.ObjectPath{
		api.ManagerInterface:     api.ManagerPath,
		api.RootDecoderInterface: api.RootDecodersPath + "/decoder0_0",
		api.RegionInterface:      api.RegionsPath + "/region0",
		api.JobInterface:         api.JobPath(1),
	}
	// sampleArgs are the values of the arguments the XML names, options
	// apart.
	sampleArgs = map[string]any{
		"root_decoder": "decoder0.0",
		"name":         "region0",
	}
)

// MutatingCalls are every method of the API that changes the host (every
// method of the daemon's own interfaces), read from the introspection XML
// in package api, on region0, decoder0.0 and job 1, plus Region.Delete with
// no_wait: the authorization tests call each of them as an unprivileged
// caller and expect AccessDenied and no write. A method added to the XML
// is called here without further ado; one on a new interface or with a new
// argument name panics until it has a sample above.
func MutatingCalls() []Call {
	contract, err := api.ParseInterfaces()
	if err != nil {
		panic(fmt.Sprintf("dbustest: %v", err))
	}
	var out []Call
	for _, iface := range contract.Own() {
		path, ok := samplePaths[iface]
		if !ok {
			panic(fmt.Sprintf("dbustest: no sample object for interface %s: add one to samplePaths", iface))
		}
		short := strings.TrimPrefix(iface, api.BusName+".")
		for _, m := range contract.Methods(iface) {
			args := make([]any, 0, len(m.In))
			for _, a := range m.In {
				switch {
				case a.Type == "a{sv}":
					args = append(args, sampleOptions(m.Name))
				case sampleArgs[a.Name] != nil:
					args = append(args, sampleArgs[a.Name])
				default:
					panic(fmt.Sprintf("dbustest: no sample value for argument %s of %s.%s: add one to sampleArgs", a.Name, iface, m.Name))
				}
			}
			out = append(out, Call{short + "." + m.Name, path, iface + "." + m.Name, args})
			if iface == api.RegionInterface && m.Name == api.MethodDelete {
				noWait := map[string]godbus.Variant{api.OptNoWait: godbus.MakeVariant(true)}
				out = append(out, Call{short + "." + m.Name + " no_wait", path, iface + "." + m.Name, []any{noWait}})
			}
		}
	}
	return out
}

// sampleOptions are options a method accepts: a create needs its size.
func sampleOptions(method string) map[string]godbus.Variant {
	if method == api.MethodCreateRegion {
		return map[string]godbus.Variant{api.OptSize: godbus.MakeVariant(uint64(256 << 20))}
	}
	return map[string]godbus.Variant{}
}

// ErrName is "ok" for nil, the D-Bus error name of a D-Bus error, and the
// error text otherwise: one word per call for tests to compare.
func ErrName(err error) string {
	if err == nil {
		return "ok"
	}
	var de godbus.Error
	if errors.As(err, &de) {
		return de.Name
	}
	var dep *godbus.Error
	if errors.As(err, &dep) {
		return dep.Name
	}
	return err.Error()
}
