// Package qemu_test checks the verdicts of run.sh, the QEMU real-kernel
// suite's driver, on recorded guest reports (testdata/judge): a baseline
// that stops showing the race, a WARNING on a serialized path, a second
// delete write, an oops, a hang and an unfinished run must each FAIL, and
// the last line must be the summary CI reads. The suite itself needs QEMU
// and root (make e2e-qemu); this needs only bash.
package qemu_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Mutations this catches: drop the `expect=race && warn=0` branch of judge
// (no-race passes), or drop its NEWEST_KERNEL branch (a newest kernel
// carrying the fix turns CI red), drop the writes check (double-delete passes), or make
// collect ignore a START without RESULT (hang passes).
func TestJudge(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	tests := []struct {
		file     string
		env      []string
		wantExit int
		want     []string
		summary  string
	}{
		{"pass.txt", nil, 0, []string{
			"| 6.1.0-56-amd64 | raw-committed | 100/100 | 65 | 0 | 165 | pass (race seen: ENODEV+OK:35,OK+OK:65) |",
			"| flock-committed | 100/100 | 0 | 0 | 100 | pass |",
			"| daemon-* | - | - | - | - | SKIP (SKIP: daemon not built) |",
		}, "qemu: 3 passed, 0 failed"},
		{"no-race.txt", nil, 1, []string{"FAIL: baseline shows no race: 0 WARNING in 100 cycles"}, "qemu: 0 passed, 1 failed"},
		// The same report from a newest kernel (make e2e-qemu-newest): the
		// kernel changed, which is news, not a red CI.
		{"no-race.txt", []string{"NEWEST_KERNEL=linux-image-6.12.118+deb12-amd64-unsigned"}, 0, []string{"KERNEL CHANGED: baseline shows no race"}, "qemu: 0 passed, 0 failed"},
		{"serialized-warn.txt", nil, 1, []string{"FAIL: 2 WARNING with serialized writers"}, "qemu: 0 passed, 1 failed"},
		{"double-delete.txt", nil, 1, []string{"FAIL: 26 delete_region writes for 25 regions"}, "qemu: 0 passed, 1 failed"},
		{"oops.txt", nil, 1, []string{"| flock-bound | - | - | 1 | - | FAIL: kernel oops"}, "qemu: 1 passed, 1 failed"},
		{"hang.txt", nil, 1, []string{"| raw-bound | - | - | - | - | FAIL: no result", "qemu: FAILED 6.1.0-56-amd64 raw-bound: FAIL: no result"}, "qemu: 0 passed, 1 failed"},
		{"incomplete.txt", nil, 1, []string{"FAIL: ran 3 of 25 cycles"}, "qemu: 0 passed, 1 failed"},
		{"check-fail.txt", nil, 1, []string{"FAIL: kill at 300ms: half-made region left"}, "qemu: 0 passed, 1 failed"},
		{"no-boot.txt", nil, 1, []string{"FAIL: the guest never reported"}, "qemu: 0 passed, 1 failed"},
	}
	for _, tc := range tests {
		t.Run(tc.file+strings.Join(tc.env, ","), func(t *testing.T) {
			cmd := exec.Command("bash", "run.sh", "--judge", filepath.Join("testdata", "judge", tc.file))
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.Output()
			exit := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				exit = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			text := string(out)
			if exit != tc.wantExit {
				t.Errorf("exit %d, want %d\n%s", exit, tc.wantExit, text)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("output lacks %q\n%s", w, text)
				}
			}
			lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
			if last := lines[len(lines)-1]; last != tc.summary {
				t.Errorf("last line %q, want %q", last, tc.summary)
			}
		})
	}
}
