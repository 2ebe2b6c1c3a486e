package service

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/service/dbustest"
)

// The XML in api is the contract; the handlers are named in handlers().
// A method added on one side only must stop the daemon from starting,
// naming the method. Mutation: drop the loop over contract.Own() in
// buildDispatch and "method without handler" goes green-to-red.
func TestContractAndHandlersMustAgree(t *testing.T) {
	regionIface := `<interface name="` + api.RegionInterface + `">`
	cancelMethod := regexp.MustCompile(`(?s)\s*<method name="Cancel">.*?</method>`)
	if !strings.Contains(api.IntrospectionXML, regionIface) || !cancelMethod.MatchString(api.IntrospectionXML) {
		t.Fatal("the XML no longer has what this test edits")
	}
	for _, tt := range []struct {
		name string
		doc  string
		want []string // substrings of the error; none: New succeeds
	}{
		{name: "as shipped", doc: api.IntrospectionXML},
		{
			name: "method without handler",
			doc: strings.Replace(api.IntrospectionXML, regionIface, regionIface+`
    <method name="Resize"><arg name="options" type="a{sv}" direction="in"/></method>`, 1),
			want: []string{"method " + api.RegionInterface + ".Resize is in the introspection XML but has no handler"},
		},
		{
			name: "handler without method",
			doc:  cancelMethod.ReplaceAllString(api.IntrospectionXML, ""),
			want: []string{"handler for " + api.JobInterface + ".Cancel, which the introspection XML does not declare"},
		},
		{
			name: "both at once, both named",
			doc: cancelMethod.ReplaceAllString(strings.Replace(api.IntrospectionXML, regionIface, regionIface+`
    <method name="Resize"/>`, 1), ""),
			want: []string{api.RegionInterface + ".Resize", api.JobInterface + ".Cancel"},
		},
		{
			name: "interface without handlers",
			doc:  strings.Replace(api.IntrospectionXML, "</node>", `<interface name="`+api.BusName+`.Pool"><method name="Grow"/></interface></node>`, 1),
			want: []string{"method " + api.BusName + ".Pool.Grow is in the introspection XML but has no handler"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Engine: newFakeEngine(), contractXML: tt.doc})
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted a contract and handlers that differ")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to name %q", err, w)
				}
			}
		})
	}
}

// The signature a call is checked against is the XML's: change it there
// and the daemon refuses the old one, quoting the XML's argument names.
// Mutation: give method an `in` field of its own again and this fails.
func TestSignaturesComeFromTheXML(t *testing.T) {
	enable := `<method name="Enable">`
	doc := strings.Replace(api.IntrospectionXML, enable, enable+`
      <arg name="mode" type="s" direction="in"/>`, 1)
	eng := newFakeEngine()
	eng.addRegion("region0")
	h := startService(t, eng, func(c *Config) { c.contractXML = doc })
	err := h.call(api.RegionsPath+"/region0", api.RegionInterface+".Enable", noOpts).Err
	if dbustest.ErrName(err) != api.ErrorInvalidArgument || !strings.Contains(err.Error(), "takes (s mode, a{sv} options), got (a{sv})") {
		t.Fatalf("Enable(a{sv}) against an XML saying (s, a{sv}): %v", err)
	}
	if calls := eng.Calls(); len(calls) != 0 {
		t.Errorf("the engine saw %v", calls)
	}
}

// Every property of every exported object is the XML's, with the XML's
// type, and no other (the Manager, root decoders, regions and a job, while
// running and once finished). startService also fails a test on any drift
// the service logs. Mutation: export Job.Progress as uint32 in job.go.
func TestExportedPropertiesFollowTheXML(t *testing.T) {
	eng := newFakeEngine()
	eng.addRegion("region0")
	eng.gate = make(chan struct{})
	h := startService(t, eng, func(c *Config) { c.JobGrace = 5 * time.Second })
	sigs := h.signals(t)
	var job dbus.ObjectPath
	if err := h.call(api.ManagerPath, api.ManagerInterface+".CreateRegion", "decoder0.0",
		opts(api.OptSize, uint64(256<<20), api.OptNoWait, true)).Store(&job); err != nil {
		t.Fatal(err)
	}
	contract, err := api.ParseInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		seen := map[string]bool{}
		for path, obj := range h.managed(t) {
			for iface, props := range obj {
				got := map[string]string{}
				for name, v := range props {
					got[name] = v.Signature().String()
				}
				if err := contract.CheckProperties(iface, got); err != nil {
					t.Errorf("%s, %s: %v", when, path, err)
				}
				seen[iface] = true
			}
		}
		for _, iface := range contract.Own() {
			if !seen[iface] {
				t.Errorf("%s: no object with %s to check", when, iface)
			}
		}
	}
	check("job running")
	close(eng.gate)
	waitSignal(t, sigs, api.JobInterface+"."+api.SignalCompleted, job)
	check("job finished")
}
