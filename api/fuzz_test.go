package api_test

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/service/dbustest"
)

// wellFormed are the properties the daemon sends for one object of each
// interface; the fuzzer replaces, removes and adds entries of every type.
func wellFormed() map[string]api.Properties {
	v := dbus.MakeVariant
	return map[string]api.Properties{
		api.RegionInterface: {
			api.PropName: v("region0"), api.PropResource: v(uint64(0x390000000)), api.PropSize: v(uint64(256 << 20)),
			api.PropType: v("pmem"), api.PropInterleaveWays: v(uint32(1)), api.PropInterleaveGranularity: v(uint32(256)),
			api.PropUUID: v("a6d0c8ec-a2fb-4202-a662-84d58654eeef"), api.PropRootDecoder: v("decoder0.0"),
			api.PropGeneration: v(uint64(1)), api.PropOrigin: v("daemon"), api.PropState: v("enabled"),
			api.PropSettled: v(true), api.PropTargets: v([]string{"decoder2.0"}), api.PropMemdevs: v([]string{"mem0"}),
		},
		api.RootDecoderInterface: {
			api.PropName: v("decoder0.0"), api.PropPort: v("root0"), api.PropSize: v(uint64(1 << 32)),
			api.PropFreeCapacity: v(uint64(1 << 31)), api.PropPmemCapable: v(true), api.PropRAMCapable: v(true),
			api.PropInterleaveWays: v(uint32(1)), api.PropInterleaveGranularity: v(uint32(256)),
			api.PropTargets: v([]string{"port1"}), api.PropFrozen: v(false), api.PropFrozenReason: v(""),
			api.PropQueueDepth: v(uint32(0)),
		},
		api.JobInterface: {
			api.PropOperation: v("delete"), api.PropProgress: v(0.5), api.PropFinished: v(false),
			api.PropSuccess: v(false), api.PropErrorName: v(""), api.PropMessage: v(""),
			api.PropObjects: v([]dbus.ObjectPath{"/io/github/cxlregion1/regions/region0"}),
		},
		api.ManagerInterface: {
			api.PropVersion: v("0.1"), api.PropGuardActive: v(false), api.PropGuardQueue: v(uint32(0)),
			api.PropSimulated: v(true), api.PropKernelFeatures: v([]string{"qos_class"}),
		},
	}
}

// FuzzDecode gives the client's property decoders (api/decode.go: what
// cxlregionctl reads from the daemon) objects with entries of every
// D-Bus type replaced, missing or added. A decoder returns a value or an
// error naming the property, never panics, and what it returns encodes
// as JSON.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{}, false)
	f.Add([]byte{1, 0, 12, 0}, true)                    // a property of the wrong type
	f.Add([]byte{2, 1, 12, 3, 0, 0, 0, 2, 9, 0}, false) // Targets longer than Memdevs
	f.Fuzz(func(t *testing.T, data []byte, drop bool) {
		objs := wellFormed()
		var names []string
		for _, props := range objs {
			for k := range props {
				names = append(names, k)
			}
		}
		slices.Sort(names)
		names = slices.Compact(names)
		over := dbustest.Variants(data, names)
		for iface, props := range objs {
			if drop {
				for k := range over {
					delete(props, k)
				}
			} else {
				maps.Copy(props, over)
			}
			objs[iface] = props
		}
		check := func(what string, v any, err error) {
			if err != nil {
				return
			}
			if _, err := json.Marshal(v); err != nil {
				t.Fatalf("%s decoded to %+v, which does not encode: %v", what, v, err)
			}
		}
		reg, err := api.DecodeRegion(objs[api.RegionInterface])
		check("region", reg, err)
		rd, err := api.DecodeRootDecoder(objs[api.RootDecoderInterface])
		check("root decoder", rd, err)
		job, err := api.DecodeJob(objs[api.JobInterface])
		check("job", job, err)
		managed := api.ManagedObjects{
			"/io/github/cxlregion1/regions/region0":          {api.RegionInterface: objs[api.RegionInterface]},
			"/io/github/cxlregion1/root_decoders/decoder0_0": {api.RootDecoderInterface: objs[api.RootDecoderInterface]},
		}
		st, err := api.DecodeStatus(objs[api.ManagerInterface], managed)
		check("status", st, err)
		regs, err := api.DecodeRegions(managed)
		check("regions", regs, err)
	})
}
