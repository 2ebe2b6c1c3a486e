package region

import (
	"testing"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

func TestSameGeneration(t *testing.T) {
	res := func(v uint64) *uint64 { return &v }
	base := sysfs.Region{Name: "region0", RootDecoder: "decoder0.0", Type: "pmem"}
	with := func(f func(*sysfs.Region)) sysfs.Region { r := base; f(&r); return r }
	tests := []struct {
		name     string
		old, cur sysfs.Region
		same     bool
	}{
		{"unchanged", base, base, true},
		{"uuid set later", base, with(func(r *sysfs.Region) { r.UUID = "u1" }), true},
		{"resource allocated later", base, with(func(r *sysfs.Region) { r.Resource = res(0x390000000) }), true},
		{"uuid changed", with(func(r *sysfs.Region) { r.UUID = "u1" }), with(func(r *sysfs.Region) { r.UUID = "u2" }), false},
		{"uuid cleared", with(func(r *sysfs.Region) { r.UUID = "u1" }), base, false},
		{"resource moved", with(func(r *sysfs.Region) { r.Resource = res(1) }), with(func(r *sysfs.Region) { r.Resource = res(2) }), false},
		{"other root decoder", base, with(func(r *sysfs.Region) { r.RootDecoder = "decoder0.1" }), false},
		{"other type", base, with(func(r *sysfs.Region) { r.Type = "ram" }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sameGeneration(tt.old, tt.cur); got != tt.same {
				t.Fatalf("sameGeneration = %v, want %v", got, tt.same)
			}
		})
	}
}
