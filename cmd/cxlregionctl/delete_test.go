package main

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cxlregion/cxlregiond/api"
)

// TestDeleteOrderHighestDecoderFirst: several regions are deleted so that
// each one's endpoint decoders are the top allocation of their ports when
// it goes (the kernel frees capacity only from the top), whatever order
// the user named them in; decoder ids compare as numbers.
func TestDeleteOrderHighestDecoderFirst(t *testing.T) {
	region := func(name string, resource uint64, decoders ...string) api.Region {
		r := api.Region{Region: name, Resource: resource}
		for i, d := range decoders {
			r.Mappings = append(r.Mappings, api.Mapping{Position: i, Decoder: d})
		}
		return r
	}
	for _, tt := range []struct {
		name string
		in   []api.Region
		want []string
	}{
		{"lowest named first", []api.Region{
			region("region0", 0x1000, "decoder3.0"), region("region1", 0x2000, "decoder3.1"), region("region2", 0x3000, "decoder3.2"),
		}, []string{"region2", "region1", "region0"}},
		{"ten after two", []api.Region{
			region("region5", 0x1000, "decoder3.2"), region("region6", 0x2000, "decoder3.10"),
		}, []string{"region6", "region5"}},
		{"interleaved: its highest decoder counts", []api.Region{
			region("region1", 0x1000, "decoder3.1", "decoder7.0"), region("region2", 0x2000, "decoder3.0", "decoder7.2"),
		}, []string{"region2", "region1"}},
		{"same decoder id on different memdevs: higher HPA first", []api.Region{
			region("region1", 0x1000, "decoder3.0"), region("region2", 0x2000, "decoder7.0"),
		}, []string{"region2", "region1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := slices.Clone(tt.in)
			slices.SortStableFunc(got, highestDecoderFirst)
			var names []string
			for _, r := range got {
				names = append(names, r.Region)
			}
			if diff := cmp.Diff(tt.want, names); diff != "" {
				t.Errorf("delete order (-want +got):\n%s", diff)
			}
		})
	}
}
