package service

import (
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/region"
)

// options is a method's a{sv}, checked and typed.
type options struct {
	timeout           time.Duration // 0: the engine's default
	noWait            bool
	noUserInteraction bool
	generation        uint64 // 0: the current generation

	typ         string
	size        uint64
	hasSize     bool
	ways        uint32
	hasWays     bool
	granularity uint32
	hasGran     bool
	targets     []string
	uuid        string
	noBind      bool

	offline bool // offline the region's online memory first
}

// parseOptions accepts only the keys a method takes, each with its one
// D-Bus type (api.OptionTypes). Anything else is InvalidArgument: a typo
// must not silently turn into a default.
func parseOptions(methodName string, raw map[string]dbus.Variant, allowed []string) (options, *dbus.Error) {
	var o options
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			return o, invalidArg("%s: unknown option %s (accepted: %s)", methodName, truncate(k), strings.Join(allowed, ", "))
		}
		v := raw[k]
		if want := api.OptionTypes[k]; v.Signature().String() != want {
			return o, invalidArg("%s: option %s must have D-Bus type %s, got %s", methodName, k, want, v.Signature().String())
		}
		switch k {
		case api.OptTimeout:
			secs := v.Value().(float64)
			if math.IsNaN(secs) || secs <= 0 || secs > api.MaxTimeout.Seconds() {
				return o, invalidArg("%s: option timeout %g: must be seconds, more than 0 and at most %g", methodName, secs, api.MaxTimeout.Seconds())
			}
			o.timeout = time.Duration(secs * float64(time.Second))
			if o.timeout <= 0 {
				// Below a nanosecond: it would read as "no timeout given".
				return o, invalidArg("%s: option timeout %g: less than a nanosecond", methodName, secs)
			}
		case api.OptNoWait:
			o.noWait = v.Value().(bool)
		case api.OptNoUserInteraction:
			o.noUserInteraction = v.Value().(bool)
		case api.OptGeneration:
			o.generation = v.Value().(uint64)
			if o.generation == 0 {
				return o, invalidArg("%s: option generation 0: generations start at 1; leave the option out for the current one", methodName)
			}
		case api.OptType:
			// An empty type given is a caller's mistake, not "the default".
			if o.typ = v.Value().(string); o.typ == "" {
				return o, invalidArg("%s: option type is empty (pmem or ram; leave it out for %s)", methodName, api.DefaultRegionType)
			}
		case api.OptSize:
			o.size, o.hasSize = v.Value().(uint64), true
		case api.OptWays:
			o.ways, o.hasWays = v.Value().(uint32), true
		case api.OptGranularity:
			o.granularity, o.hasGran = v.Value().(uint32), true
		case api.OptTargets:
			o.targets = v.Value().([]string)
		case api.OptUUID:
			// The kernel prints and compares uuids in lower case (%pUb):
			// an upper-case copy of a region's uuid is the same uuid.
			if o.uuid = strings.ToLower(v.Value().(string)); o.uuid == "" {
				return o, invalidArg("%s: option uuid is empty (leave it out to have one generated)", methodName)
			}
		case api.OptNoBind:
			o.noBind = v.Value().(bool)
		case api.OptOffline:
			o.offline = v.Value().(bool)
		}
	}
	return o, nil
}

// createRequest validates a create completely before the engine sees it:
// every name, number and uuid with the engine's own Validate functions.
// What depends on the topology (free capacity, a duplicate uuid, ways the
// window can interleave) the engine checks before its first write.
func createRequest(rootDecoder string, o options) (region.CreateRequest, *dbus.Error) {
	req := region.CreateRequest{RootDecoder: rootDecoder, Type: o.typ, Size: o.size,
		Targets: o.targets, UUID: o.uuid, NoBind: o.noBind}
	if req.Type == "" {
		req.Type = api.DefaultRegionType
	}
	// An empty root decoder is the default: the first that can hold the
	// region (cxl create-region without -d).
	if rootDecoder != "" {
		if err := region.ValidateDecoderName(rootDecoder); err != nil {
			return req, invalidArg("root decoder: %v", err)
		}
	}
	if err := region.ValidateType(req.Type); err != nil {
		return req, invalidArg("%v", err)
	}
	// No size option is the default: the largest the targets can give.
	if o.hasSize && o.size == 0 {
		return req, invalidArg("size 0: leave the option out for the largest size the targets can give")
	}
	if o.hasWays {
		if o.ways > region.MaxTargets {
			return req, invalidArg("interleave ways %d: at most %d", o.ways, region.MaxTargets)
		}
		if err := region.ValidateWays(int(o.ways)); err != nil {
			return req, invalidArg("%v", err)
		}
		req.Ways = int(o.ways)
	}
	if o.hasGran {
		if o.granularity > math.MaxInt32 {
			return req, invalidArg("interleave granularity %d: too large", o.granularity)
		}
		if err := region.ValidateGranularity(int(o.granularity)); err != nil {
			return req, invalidArg("%v", err)
		}
		req.Granularity = int(o.granularity)
	}
	if len(req.Targets) > region.MaxTargets {
		return req, invalidArg("%d targets: at most %d", len(req.Targets), region.MaxTargets)
	}
	seen := map[string]bool{}
	for i, t := range req.Targets {
		if err := region.ValidateTargetName(t); err != nil {
			return req, invalidArg("target %d: %v", i, err)
		}
		if seen[t] {
			return req, invalidArg("target %d: %s is listed twice", i, t)
		}
		seen[t] = true
	}
	if req.Ways != 0 && len(req.Targets) != 0 && len(req.Targets) != req.Ways {
		return req, invalidArg("%d targets for %d interleave ways", len(req.Targets), req.Ways)
	}
	if req.UUID != "" {
		if req.Type != "pmem" {
			return req, invalidArg("uuid: only pmem regions have one")
		}
		if err := region.ValidateUUID(req.UUID); err != nil {
			return req, invalidArg("%v", err)
		}
	}
	ways := req.Ways
	if ways == 0 {
		ways = max(len(req.Targets), 1)
	}
	if o.hasSize {
		if err := region.ValidateSize(req.Size, ways); err != nil {
			return req, invalidArg("%v", err)
		}
	}
	return req, nil
}

// validRegionName checks a region name argument.
func validRegionName(name string) *dbus.Error {
	if err := region.ValidateRegionName(name); err != nil {
		return invalidArg("%v", err)
	}
	return nil
}
