package cxlsim

import (
	"os"
	"strings"
	"testing"
)

// errorsRow is one row of a kernel's errors.tsv: a write and its errno.
type errorsRow struct {
	id, path, value, result string
	newline                 bool
}

func readErrorsTSV(t testing.TB, profile string) []errorsRow {
	t.Helper()
	b, err := os.ReadFile("testdata/" + profile + "/errors.tsv")
	if err != nil {
		t.Fatal(err)
	}
	var rows []errorsRow
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 5 {
			t.Fatalf("errors.tsv: short row %q", line)
		}
		v, noNL := strings.CutSuffix(f[3], " (no newline)")
		rows = append(rows, errorsRow{id: f[0], path: sysPath(f[2]), value: v, result: f[4], newline: !noNL})
	}
	return rows
}

// TestErrorsReplay replays every row of both kernels' errors.tsv on the
// captured QEMU machine and checks the kernel's errno for each. The rows
// ran in order on one guest, with setup writes between some of them;
// lifecycle.log shows those it logged, the rest (a create handshake before
// C01, the deletes of the regions C04 and C09 created) follow from the
// rows' own results and kernel logs.
func TestErrorsReplay(t *testing.T) {
	for _, profile := range []string{Profile61, Profile612} {
		t.Run(profile, func(t *testing.T) {
			k := newQEMU(t, profile)
			w := readLifecycle(t, "testdata/"+profile+"/lifecycle.log")
			apply := func(ws ...lifecycleWrite) {
				t.Helper()
				for _, x := range ws {
					mustWrite(t, k, x.path, x.value, x.result)
					if strings.HasSuffix(x.path, "cxl_region/bind") && x.result == "OK" {
						waitRegistered(t, k, x.value)
					}
				}
			}
			const create = "bus/cxl/devices/decoder0.0/create_pmem_region"
			const del = "bus/cxl/devices/decoder0.0/delete_region"
			// What ran before each row, besides the row itself.
			before := map[string]func(){
				"C01": func() { apply(w[:14]...); mustWrite(t, k, create, "region0", "OK") },
				"C05": func() { mustWrite(t, k, del, "region1", "OK") }, // region1 from C04
				"C10": func() {
					if profile == Profile612 { // region1 (ram) from C09
						mustWrite(t, k, del, "region1", "OK")
					}
				},
				"C20": func() { apply(w[14:16]...) },
				"C22": func() { apply(w[16]) },
				"C32": func() { apply(w[17]) },
				"C34": func() { apply(w[18]) },
				"C42": func() { apply(w[19:21]...) },
				"C63": func() { apply(w[21]) },
				"C69": func() { apply(w[22:24]...) },
			}
			rows := readErrorsTSV(t, profile)
			if len(rows) != 77 {
				t.Fatalf("errors.tsv has %d rows, want 77", len(rows))
			}
			for _, row := range rows {
				if f := before[row.id]; f != nil {
					f()
				}
				data := row.value
				if row.newline {
					data += "\n"
				}
				err := k.WriteFile(row.path, []byte(data))
				if got := errnoName(err); got != row.result {
					t.Errorf("%s: write %q to %s: got %s, kernel %s gave %s", row.id, row.value, row.path, got, profile, row.result)
				}
				if strings.HasSuffix(row.path, "cxl_region/bind") && err == nil {
					waitRegistered(t, k, row.value)
				}
			}
			if warn, bug := k.Counts(); warn != 0 || bug != 0 {
				t.Errorf("the captured sequence printed no WARNING or BUG, the model %d and %d", warn, bug)
			}
		})
	}
}
