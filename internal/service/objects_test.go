package service

import (
	"slices"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/cxlregion/cxlregiond/api"
)

func TestObjectTreeSignalsOnlyChanges(t *testing.T) {
	const path = dbus.ObjectPath(api.RegionsPath + "/region1")
	v := dbus.MakeVariant
	base := object{api.RegionInterface: {"A": v("x"), "B": v(uint64(1))}}
	tests := []struct {
		name string
		do   func(tx *treeTx)
		want []string // signal names with a short summary
	}{
		{"add", func(tx *treeTx) { tx.set(path, base) }, []string{"InterfacesAdded"}},
		{"same again", func(tx *treeTx) { tx.set(path, base) }, nil},
		{"one property", func(tx *treeTx) {
			tx.set(path, object{api.RegionInterface: {"A": v("y"), "B": v(uint64(1))}})
		}, []string{"PropertiesChanged A"}},
		{"type change counts", func(tx *treeTx) {
			tx.set(path, object{api.RegionInterface: {"A": v("y"), "B": v(uint32(1))}})
		}, []string{"PropertiesChanged B"}},
		{"patch", func(tx *treeTx) { tx.patch(path, api.RegionInterface, props{"A": v("z")}) }, []string{"PropertiesChanged A"}},
		{"patch unknown object", func(tx *treeTx) { tx.patch("/nope", api.RegionInterface, props{"A": v("z")}) }, nil},
		{"interface added", func(tx *treeTx) {
			tx.set(path, object{api.RegionInterface: {"A": v("z"), "B": v(uint32(1))}, api.JobInterface: {}})
		}, []string{"InterfacesAdded"}},
		{"interface removed", func(tx *treeTx) {
			tx.set(path, object{api.RegionInterface: {"A": v("z"), "B": v(uint32(1))}})
		}, []string{"InterfacesRemoved"}},
		{"remove", func(tx *treeTx) { tx.remove(path) }, []string{"InterfacesRemoved"}},
		{"remove again", func(tx *treeTx) { tx.remove(path) }, nil},
	}
	var got []signal
	tree := newObjectTree(api.RootPath, func(s signal) { got = append(got, s) }, nil)
	for _, tt := range tests {
		got = nil
		tree.update(tt.do)
		var names []string
		for _, s := range got {
			name := s.name[len(s.name)-len(lastElem(s.name)):]
			if name == "PropertiesChanged" {
				for k := range s.args[1].(map[string]dbus.Variant) {
					name += " " + k
				}
			}
			names = append(names, name)
		}
		if len(names) != len(tt.want) {
			t.Errorf("%s: signals %v, want %v", tt.name, names, tt.want)
			continue
		}
		for i := range names {
			if names[i] != tt.want[i] {
				t.Errorf("%s: signals %v, want %v", tt.name, names, tt.want)
			}
		}
	}
}

func lastElem(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return s[i+1:]
		}
	}
	return s
}

// The tree hands out copies: a reader cannot change an object behind the
// tree's back (and so skip a PropertiesChanged).
func TestObjectTreeReturnsCopies(t *testing.T) {
	tree := newObjectTree(api.RootPath, func(signal) {}, nil)
	tree.update(func(tx *treeTx) {
		tx.set(api.ManagerPath, object{api.ManagerInterface: {"A": dbus.MakeVariant("x")}})
	})
	p, _ := tree.get(api.ManagerPath, api.ManagerInterface)
	p["A"] = dbus.MakeVariant("changed")
	m := tree.managed()
	m[api.ManagerPath][api.ManagerInterface]["A"] = dbus.MakeVariant("changed")
	again, _ := tree.get(api.ManagerPath, api.ManagerInterface)
	if again["A"].Value() != "x" {
		t.Errorf("tree changed through a copy: %v", again["A"])
	}
}

func TestObjectTreeChildren(t *testing.T) {
	tree := newObjectTree(api.RootPath, func(signal) {}, nil)
	tree.update(func(tx *treeTx) {
		tx.set(api.ManagerPath, object{})
		tx.set(api.RegionsPath+"/region1", object{})
		tx.set(api.RegionsPath+"/region2", object{})
	})
	tests := map[dbus.ObjectPath]string{
		"/":              "io",
		"/io/github":     "cxlregion1",
		api.RootPath:     "Manager regions",
		api.RegionsPath:  "region1 region2",
		api.ManagerPath:  "",
		"/io/github/cxl": "",
	}
	for p, want := range tests {
		got := ""
		for i, c := range tree.children(p) {
			if i > 0 {
				got += " "
			}
			got += c
		}
		if got != want {
			t.Errorf("children(%s) = %q, want %q", p, got, want)
		}
	}
}

// TestSortedPathsNaturalOrder: sync adds objects in natural order
// (region2 before region10), whatever order the map gives.
func TestSortedPathsNaturalOrder(t *testing.T) {
	want := []dbus.ObjectPath{"/r/region1", "/r/region2", "/r/region10", "/r/region11", "/r/region100", "/r/region4095"}
	for range 20 {
		m := map[dbus.ObjectPath]props{}
		for _, p := range want {
			m[p] = nil
		}
		if got := sortedPaths(m); !slices.Equal(got, want) {
			t.Fatalf("sortedPaths = %v, want %v", got, want)
		}
	}
}
