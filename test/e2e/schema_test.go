package e2e

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/cxlregion/cxlregiond/api"
	"github.com/cxlregion/cxlregiond/internal/devname"
)

// The names in the output are spelled as the kernel spells them
// (internal/devname); uuids in the kernel's lower-case form.
var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// strictDecode decodes JSON into v, refusing unknown fields and trailing
// data: the output's shape is exactly the documented one.
func strictDecode(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("JSON does not match its schema: %v\n%s", err, data)
	}
	if dec.More() {
		t.Fatalf("trailing data after the JSON value:\n%s", data)
	}
}

// requireKeys checks that the object has the keys that are never omitted.
func requireKeys(t *testing.T, data []byte, keys ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, data)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q:\n%s", k, data)
		}
	}
}

var regionKeys = []string{"region", "size", "type", "interleave_ways", "interleave_granularity", "mappings",
	"root_decoder", "generation", "origin", "lifecycle", "settled"}

// checkRegion checks one region object's schema and values.
func checkRegion(t *testing.T, data []byte) api.Region {
	t.Helper()
	var r api.Region
	strictDecode(t, data, &r)
	requireKeys(t, data, regionKeys...)
	checkRegionValues(t, r)
	return r
}

func checkRegionValues(t *testing.T, r api.Region) {
	t.Helper()
	bad := func(field string, v any) { t.Errorf("region %s: bad %s %v", r.Region, field, v) }
	if !devname.IsRegion(r.Region) {
		bad("region", r.Region)
	}
	if r.Type != "pmem" && r.Type != "ram" {
		bad("type", r.Type)
	}
	if r.Size%(256<<20) != 0 {
		bad("size", r.Size)
	}
	switch r.Lifecycle {
	case api.StateConfiguring, api.StateCommitted, api.StateEnabled, api.StateDeleting:
	default:
		bad("lifecycle", r.Lifecycle)
	}
	// state is cxl list's: "disabled" for a region not bound, absent for an
	// enabled one.
	if want := map[bool]string{true: "", false: "disabled"}[r.Lifecycle == api.StateEnabled]; r.State != want {
		bad("state", r.State)
	}
	if r.DecodeState != api.DecodeState(r.Lifecycle) {
		bad("decode_state", r.DecodeState)
	}
	if r.Origin != "daemon" && r.Origin != "kernel" && r.Origin != "foreign" {
		bad("origin", r.Origin)
	}
	if r.Generation < 1 {
		bad("generation", r.Generation)
	}
	if !devname.IsDecoder(r.RootDecoder) {
		bad("root_decoder", r.RootDecoder)
	}
	// A pmem region gets its uuid while being configured; a ram region
	// never has one.
	configured := r.Lifecycle == api.StateCommitted || r.Lifecycle == api.StateEnabled
	if (r.Type == "ram" && r.UUID != "") || (r.Type == "pmem" && configured && r.UUID == "") ||
		(r.UUID != "" && !uuidRE.MatchString(r.UUID)) {
		bad("uuid", r.UUID)
	}
	for _, m := range r.Mappings {
		if m.Position < 0 || m.Position >= int(r.InterleaveWays) || !devname.IsDecoder(m.Decoder) || !devname.IsMemdev(m.Memdev) {
			bad("mapping", m)
		}
	}
	if r.Lifecycle != api.StateConfiguring && len(r.Mappings) != int(r.InterleaveWays) {
		bad("mappings count", len(r.Mappings))
	}
}

// checkRegionList checks `list --json`: an array of regions.
func checkRegionList(t *testing.T, data []byte) []api.Region {
	t.Helper()
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("list --json is not an array: %v\n%s", err, data)
	}
	out := make([]api.Region, 0, len(raw))
	for _, r := range raw {
		out = append(out, checkRegion(t, r))
	}
	return out
}

// checkStatus checks `status --json`.
func checkStatus(t *testing.T, data []byte) api.Status {
	t.Helper()
	var st api.Status
	strictDecode(t, data, &st)
	requireKeys(t, data, "version", "guard_active", "simulated", "kernel_features", "root_decoders", "regions")
	var m struct {
		RootDecoders []json.RawMessage `json:"root_decoders"`
	}
	_ = json.Unmarshal(data, &m)
	for _, rd := range m.RootDecoders {
		requireKeys(t, rd, "decoder", "port", "size", "max_available_extent", "pmem_capable", "volatile_capable",
			"interleave_ways", "interleave_granularity", "targets", "frozen", "queue_depth")
	}
	for _, rd := range st.RootDecoders {
		if !devname.IsDecoder(rd.Decoder) || rd.Size == 0 || rd.MaxAvailableExtent > rd.Size || rd.InterleaveWays == 0 {
			t.Errorf("bad root decoder %+v", rd)
		}
	}
	return st
}
