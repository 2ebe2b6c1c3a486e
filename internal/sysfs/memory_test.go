package sysfs_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// buildTree lays out a fixture of `f path value`, `l path target` and
// `d path` lines under a temporary root.
func buildTree(t *testing.T, fixture string) string {
	t.Helper()
	root := t.TempDir()
	fh, err := os.Open(fixture)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		p, val, _ := strings.Cut(rest, " ")
		abs := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			t.Fatal(err)
		}
		switch kind {
		case "f":
			err = os.WriteFile(abs, []byte(val+"\n"), 0o644)
		case "l":
			err = os.Symlink(val, abs)
		case "d":
			err = os.MkdirAll(abs, 0o755)
		default:
			t.Fatalf("fixture line %q", sc.Text())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestReadRegionMemory(t *testing.T) {
	root := buildTree(t, filepath.Join("testdata", "memory", "system-ram.txt"))
	res := uint64(0x390000000)
	kmem := sysfs.DaxDevice{Name: "dax0.0", Driver: "kmem", TargetNode: 1, Size: 262144000}
	b115 := sysfs.MemoryBlock{Name: "memory115", Index: 115, State: "online", ValidZones: "Movable", Node: 1}
	b116 := sysfs.MemoryBlock{Name: "memory116", Index: 116, State: "offline", ValidZones: "Normal Movable", Node: 1}
	tests := []struct {
		name   string
		reg    sysfs.Region
		want   sysfs.RegionMemory
		online uint64
		nodes  []int
	}{
		{"256M: one online block, the other dax device is another region's",
			sysfs.Region{Name: "region0", Resource: &res, Size: 256 << 20},
			sysfs.RegionMemory{BlockSize: 128 << 20, Dax: []sysfs.DaxDevice{kmem}, Blocks: []sysfs.MemoryBlock{b115}},
			128 << 20, []int{1}},
		{"384M: an offline block too, not counted online",
			sysfs.Region{Name: "region0", Resource: &res, Size: 384 << 20},
			sysfs.RegionMemory{BlockSize: 128 << 20, Dax: []sysfs.DaxDevice{kmem}, Blocks: []sysfs.MemoryBlock{b115, b116}},
			128 << 20, []int{1}},
		{"no range yet: dax devices only",
			sysfs.Region{Name: "region0"},
			sysfs.RegionMemory{Dax: []sysfs.DaxDevice{kmem}},
			0, nil},
		{"a region with neither",
			sysfs.Region{Name: "region3", Resource: &res, Size: 0x1000000},
			sysfs.RegionMemory{},
			0, nil},
		{"unbound dax device of another region",
			sysfs.Region{Name: "region7"},
			sysfs.RegionMemory{Dax: []sysfs.DaxDevice{{Name: "dax7.0", TargetNode: 2, Size: 128 << 20}}},
			0, nil},
	}
	fsys := sysfs.Open(root)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fsys.ReadRegionMemory(tt.reg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("memory (-want +got):\n%s", diff)
			}
			if got.OnlineBytes() != tt.online {
				t.Errorf("OnlineBytes = %d, want %d", got.OnlineBytes(), tt.online)
			}
			if diff := cmp.Diff(tt.nodes, got.Nodes()); diff != "" {
				t.Errorf("Nodes (-want +got):\n%s", diff)
			}
		})
	}
}

// A kernel without memory hotplug or dax has neither directory: no
// memory, no error.
func TestReadRegionMemoryAbsent(t *testing.T) {
	res := uint64(0x390000000)
	got, err := sysfs.Open(t.TempDir()).ReadRegionMemory(sysfs.Region{Name: "region0", Resource: &res, Size: 256 << 20})
	if err != nil || len(got.Blocks) != 0 || len(got.Dax) != 0 || got.BlockSize != 0 {
		t.Fatalf("got %+v, %v; want nothing", got, err)
	}
}

func TestMemoryBlockStatePath(t *testing.T) {
	for name, want := range map[string]string{
		"memory115": "devices/system/memory/memory115/state",
		"memory01":  "", "memory": "", "../memory1": "", "memory1/../x": "",
	} {
		got, err := sysfs.MemoryBlockStatePath(name)
		if (err == nil) != (want != "") || got != want {
			t.Errorf("MemoryBlockStatePath(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
}

// A block being hot-added is listed before the kernel gives it its node,
// and its valid_zones read then oopses 6.12 (NULL pointer in
// zone_for_pfn_range; readMemoryBlock). In the fixture memory116 has no
// nodeN link yet and its valid_zones is a directory, so reading it fails
// the test. Mutation: reading valid_zones whatever the link says fails it.
func TestReadRegionMemoryBlockWithoutNode(t *testing.T) {
	root := buildTree(t, filepath.Join("testdata", "memory", "hot-adding.txt"))
	res := uint64(0x390000000)
	got, err := sysfs.Open(root).ReadRegionMemory(sysfs.Region{Name: "region0", Resource: &res, Size: 512 << 20})
	if err != nil {
		t.Fatal(err)
	}
	want := sysfs.RegionMemory{BlockSize: 128 << 20, Blocks: []sysfs.MemoryBlock{
		{Name: "memory115", Index: 115, State: "online", ValidZones: "Movable", Node: 1},
		{Name: "memory116", Index: 116, State: "offline", Node: -1},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("memory (-want +got):\n%s", diff)
	}
}
