package dbustest

import (
	"errors"

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

// MutatingCalls are every method of the API that changes the host, on
// region0 and decoder0.0: the authorization tests call each of them as an
// unprivileged caller and expect AccessDenied and no write. A new mutating
// method belongs here.
func MutatingCalls() []Call {
	none := map[string]godbus.Variant{}
	size := map[string]godbus.Variant{api.OptSize: godbus.MakeVariant(uint64(256 << 20))}
	noWait := map[string]godbus.Variant{api.OptNoWait: godbus.MakeVariant(true)}
	region := godbus.ObjectPath(api.RegionsPath + "/region0")
	return []Call{
		{"Manager.CreateRegion", api.ManagerPath, api.ManagerInterface + ".CreateRegion", []any{"decoder0.0", size}},
		{"Manager.DeleteRegion", api.ManagerPath, api.ManagerInterface + ".DeleteRegion", []any{"region0", none}},
		{"Manager.Refresh", api.ManagerPath, api.ManagerInterface + ".Refresh", nil},
		{"RootDecoder.CreateRegion", api.RootDecodersPath + "/decoder0_0", api.RootDecoderInterface + ".CreateRegion", []any{size}},
		{"Region.Delete", region, api.RegionInterface + ".Delete", []any{none}},
		{"Region.Enable", region, api.RegionInterface + ".Enable", []any{none}},
		{"Region.Disable", region, api.RegionInterface + ".Disable", []any{none}},
		{"Region.Delete no_wait", region, api.RegionInterface + ".Delete", []any{noWait}},
	}
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
