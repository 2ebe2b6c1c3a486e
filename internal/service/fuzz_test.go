package service

import (
	"math"
	"slices"
	"testing"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/region"
	"github.com/cxlregion/cxlregiond/internal/service/dbustest"
)

// FuzzOptions sends every method's a{sv} decoding arbitrary dictionaries
// (every variant type, known and unknown keys, numbers at their limits,
// strings with control characters and path separators) as they come off
// the wire, with an arbitrary root decoder argument. Nothing may panic;
// every refusal is InvalidArgument; what is accepted passes every
// validator again, so nothing unchecked reaches the engine.
func FuzzOptions(f *testing.F) {
	f.Add([]byte{1, 0, 7, 0, 0, 0, 0, 0x10, 0, 0, 0}, "decoder0.0")
	f.Add([]byte{3, 1, 9, 4, 'p', 'm', 'e', 'm', 0, 2, 5, 1, 3, 7, 5, 0}, "decoder0.0")
	f.Add([]byte{2, 4, 12, 2, 10, 0, 'd', 'e', 'c', 'o', 'd', 'e', 'r', '2', '.', '0', 0, 11, 0}, "../decoder0.0")
	f.Add([]byte{1, 200, 9, 0, 9, 0}, "decoder0.0\n")
	f.Add([]byte{1, 8, 8, 0}, "decoder4294967296.0")
	f.Fuzz(func(t *testing.T, data []byte, root string) {
		for _, m := range []struct {
			name    string
			allowed []string
		}{
			{api.MethodCreateRegion, api.CreateOptions},
			{api.MethodDeleteRegion, api.DeleteOptions},
			{"Enable", api.BindOptions},
		} {
			raw := dbustest.Variants(data, m.allowed)
			if raw == nil {
				return
			}
			o, derr := parseOptions(m.name, raw, m.allowed)
			if derr != nil {
				if derr.Name != api.ErrorInvalidArgument {
					t.Fatalf("%s %v: %s", m.name, raw, derr.Name)
				}
				continue
			}
			for k, v := range raw {
				if !slices.Contains(m.allowed, k) || v.Signature().String() != api.OptionTypes[k] {
					t.Fatalf("%s accepted option %q of type %s", m.name, k, v.Signature())
				}
			}
			if o.timeout < 0 || o.timeout > api.MaxTimeout {
				t.Fatalf("%s accepted timeout %v", m.name, o.timeout)
			}
			if _, ok := raw[api.OptGeneration]; ok && o.generation == 0 {
				t.Fatalf("%s accepted generation 0", m.name)
			}
			if m.name != api.MethodCreateRegion {
				continue
			}
			req, derr := createRequest(root, o)
			if derr != nil {
				if derr.Name != api.ErrorInvalidArgument {
					t.Fatalf("createRequest: %s", derr.Name)
				}
				continue
			}
			checkCreateRequest(t, req)
		}
	})
}

// checkCreateRequest fails unless every field of an accepted create
// passes the engine's validators. No root decoder and size 0 are valid:
// the planner picks the first root decoder that can hold the region and
// the largest size its targets can give, as cxl create-region does.
func checkCreateRequest(t *testing.T, req region.CreateRequest) {
	t.Helper()
	if req.RootDecoder != "" {
		if err := region.ValidateDecoderName(req.RootDecoder); err != nil {
			t.Fatalf("accepted %+v: %v", req, err)
		}
	}
	if err := region.ValidateType(req.Type); err != nil {
		t.Fatalf("accepted %+v: %v", req, err)
	}
	for _, d := range req.Targets {
		if err := region.ValidateTargetName(d); err != nil {
			t.Fatalf("accepted %+v: %v", req, err)
		}
	}
	if req.UUID != "" {
		if err := region.ValidateUUID(req.UUID); err != nil {
			t.Fatalf("accepted %+v: %v", req, err)
		}
	}
	if req.Ways != 0 {
		if err := region.ValidateWays(req.Ways); err != nil {
			t.Fatalf("accepted %+v: %v", req, err)
		}
	}
	if req.Granularity != 0 {
		if err := region.ValidateGranularity(req.Granularity); err != nil {
			t.Fatalf("accepted %+v: %v", req, err)
		}
	}
	ways := max(req.Ways, len(req.Targets), 1)
	if req.Size == 0 {
		return
	}
	if err := region.ValidateSize(req.Size, ways); err != nil || req.Size > math.MaxInt64 {
		t.Fatalf("accepted %+v: size %v", req, err)
	}
}

// FuzzRegionName is the name check of every method that takes a region
// name (DeleteRegion, object paths): an accepted name is one the kernel
// prints, so no path is built from anything else.
func FuzzRegionName(f *testing.F) {
	for _, s := range []string{"region0", "region01", "../region0", "region0\n", "region\x00", "region2147483647", "region99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if derr := validRegionName(name); derr != nil {
			if derr.Name != api.ErrorInvalidArgument {
				t.Fatalf("%q: %s", name, derr.Name)
			}
			return
		}
		if err := region.ValidateRegionName(name); err != nil {
			t.Fatalf("%q accepted: %v", name, err)
		}
		p, ok := api.RegionPath(name)
		if !ok || !p.IsValid() {
			t.Fatalf("%q accepted but has no object path", name)
		}
		if back, ok := api.RegionName(p); !ok || back != name {
			t.Fatalf("%q accepted: its object path %s names %q", name, p, back)
		}
	})
}
