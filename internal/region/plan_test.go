package region

import (
	"errors"
	"strings"
	"testing"

	"github.com/cxlregion/cxlregiond/internal/sysfs/sysfstest"
)

// TestPlanCreateOnCapturedTopology plans creates against the idle 6.12
// QEMU topology (one 4 GiB pmem+ram window over one host bridge, one
// 256 MiB pmem-only memdev behind decoder2.0).
func TestPlanCreateOnCapturedTopology(t *testing.T) {
	topo, err := sysfstest.Materialize(t, "../sysfs/testdata/6.12/1-idle.txt").Scan()
	if err != nil {
		t.Fatal(err)
	}
	noUUID := func(string) bool { return false }
	tests := []struct {
		name    string
		req     CreateRequest
		inUse   func(string) bool
		want    error
		wantMsg string
		check   func(*testing.T, *createPlan)
	}{
		{
			name: "pmem 256M picks decoder2.0 and makes a uuid",
			req:  CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20},
			check: func(t *testing.T, p *createPlan) {
				if len(p.targets) != 1 || p.targets[0].Name != "decoder2.0" {
					t.Errorf("targets = %+v", p.targets)
				}
				if ValidateUUID(p.uuid) != nil {
					t.Errorf("generated uuid %q invalid", p.uuid)
				}
				if p.ways != 1 || p.granularity != 256 {
					t.Errorf("ways %d gran %d", p.ways, p.granularity)
				}
			},
		},
		{name: "explicit target", req: CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20, Targets: []string{"decoder2.0"}}},
		{name: "unknown root", req: CreateRequest{RootDecoder: "decoder9.0", Type: "pmem", Size: 256 << 20}, want: ErrNotFound},
		{name: "over capacity", req: CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 512 << 20}, want: ErrInvalid, wantMsg: "free pmem capacity"},
		{name: "two ways, one memdev", req: CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 512 << 20, Ways: 2}, want: ErrInvalid, wantMsg: "target1"},
		{name: "ram on a pmem-only memdev", req: CreateRequest{RootDecoder: "decoder0.0", Type: "ram", Size: 256 << 20}, want: ErrInvalid, wantMsg: "ram capacity"},
		{name: "switch decoder as target", req: CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20, Targets: []string{"decoder1.0"}}, want: ErrInvalid, wantMsg: "no such endpoint decoder"},
		{name: "duplicate uuid", req: CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 256 << 20, UUID: "a6d0c8ec-a2fb-4202-a662-84d58654eeef"},
			inUse: func(string) bool { return true }, want: ErrInvalid, wantMsg: "already used"},
		{name: "uuid on ram", req: CreateRequest{RootDecoder: "decoder0.0", Type: "ram", Size: 256 << 20, UUID: "a6d0c8ec-a2fb-4202-a662-84d58654eeef"}, want: ErrInvalid},
		{name: "bigger than window", req: CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 8 << 30}, want: ErrInvalid, wantMsg: "window"},
		{name: "ways 3 on a 1-way root is allowed by encoding but not power of two", req: CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 768 << 20, Ways: 3}, want: ErrInvalid, wantMsg: "power of two"},
		{name: "unaligned", req: CreateRequest{RootDecoder: "decoder0.0", Type: "pmem", Size: 300 << 20}, want: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inUse := tt.inUse
			if inUse == nil {
				inUse = noUUID
			}
			p, err := planCreate(tt.req, topo, inUse)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("err = %q, want it to mention %q", err, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}
