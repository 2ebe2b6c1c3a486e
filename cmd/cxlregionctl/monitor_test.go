package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	godbus "github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
)

// After a reconnect, what changed while the daemon was away is printed as
// ordinary events: gone as removed, new as added, different as changed
// (naming the properties).
func TestResyncPrintsWhatChangedMeanwhile(t *testing.T) {
	region := func(name string, size uint64) map[string]api.Properties {
		return map[string]api.Properties{api.RegionInterface: {
			api.PropName: godbus.MakeVariant(name), api.PropSize: godbus.MakeVariant(size),
		}}
	}
	path := func(name string) godbus.ObjectPath { p, _ := api.RegionPath(name); return p }
	var out, notes bytes.Buffer
	m := &monitorState{out: &out, notes: &notes, asJSON: true, synced: true, objects: api.ManagedObjects{
		path("region0"): region("region0", 1<<28),
		path("region1"): region("region1", 1<<28),
		path("region2"): region("region2", 1<<28),
	}}
	if err := m.resync(api.ManagedObjects{
		path("region1"): region("region1", 1<<29),
		path("region2"): region("region2", 1<<28),
		path("region3"): region("region3", 1<<28),
	}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev api.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		got = append(got, ev.Event+" "+ev.Object+" "+strings.Join(ev.Changed, ","))
	}
	want := []string{
		"region_removed " + string(path("region0")) + " ",
		"region_changed " + string(path("region1")) + " " + api.PropSize,
		"region_added " + string(path("region3")) + " ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, ok := m.objects[path("region0")]; ok {
		t.Errorf("region0 still known after resync")
	}
}
