package main

import (
	"slices"
	"testing"
)

// The guest's verdict rests on these counts: a baseline passes on multi_ok
// and WARNING > 0, a serialized run on ok == cycles. Mutation: count OK+OK
// pairs in record as one success and TestTallyRecord goes red.
func TestTallyRecord(t *testing.T) {
	tests := []struct {
		name        string
		cycles      [][]string
		wantOK      int
		wantMultiOK int
		wantPairs   string
		wantOut     string
	}{
		{"serialized", [][]string{{"OK", "ENODEV"}, {"ENODEV", "OK"}}, 2, 0, "ENODEV+OK:2", "ENODEV:2,OK:2"},
		{"raced", [][]string{{"OK", "OK"}, {"OK", "ENODEV"}}, 3, 1, "ENODEV+OK:1,OK+OK:1", "ENODEV:1,OK:3"},
		{"three writers", [][]string{{"exit1", "OK", "OK"}}, 2, 1, "OK+OK+exit1:1", "OK:2,exit1:1"},
		{"nothing deleted", [][]string{{"ENODEV", "ENODEV"}}, 0, 0, "ENODEV+ENODEV:1", "ENODEV:2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tl := &tally{outcomes: map[string]int{}, pairs: map[string]int{}}
			for _, c := range tc.cycles {
				tl.record(c)
			}
			if tl.ok != tc.wantOK || tl.multiOK != tc.wantMultiOK {
				t.Errorf("ok=%d multiOK=%d, want %d %d", tl.ok, tl.multiOK, tc.wantOK, tc.wantMultiOK)
			}
			if got := joinCounts(tl.pairs); got != tc.wantPairs {
				t.Errorf("pairs %q, want %q", got, tc.wantPairs)
			}
			if got := joinCounts(tl.outcomes); got != tc.wantOut {
				t.Errorf("outcomes %q, want %q", got, tc.wantOut)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	tests := []struct {
		tmpl, region, root string
		want               []string
	}{
		{"cxl destroy-region -f {}", "region3", "decoder0.0", []string{"cxl", "destroy-region", "-f", "region3"}},
		{"cxlregionctl lock {root} -- cxl destroy-region -f {}", "region0", "decoder1.0",
			[]string{"cxlregionctl", "lock", "decoder1.0", "--", "cxl", "destroy-region", "-f", "region0"}},
	}
	for _, tc := range tests {
		if got := expand(tc.tmpl, tc.region, tc.root); !slices.Equal(got, tc.want) {
			t.Errorf("expand(%q) = %q, want %q", tc.tmpl, got, tc.want)
		}
	}
}

func TestParseState(t *testing.T) {
	for _, s := range []string{"created", "uncommitted", "committed", "bound"} {
		if _, err := parseState(s); err != nil {
			t.Errorf("parseState(%q): %v", s, err)
		}
	}
	if _, err := parseState("enabled"); err == nil {
		t.Error("parseState(enabled) accepted an unknown state")
	}
}
