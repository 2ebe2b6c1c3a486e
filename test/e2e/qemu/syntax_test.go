package qemu_test

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// The guest's scripts run only inside a VM, where a syntax error ends the
// boot (PID 1 exits) and costs a whole QEMU run to find: parse them here.
// A merge that joined two case arms of run_all_scenarios got this far once.
func TestScriptsParse(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	guest, _ := filepath.Glob(filepath.Join("guest", "*.sh"))
	guest = append(guest, filepath.Join("guest", "init"))
	sets, _ := filepath.Glob(filepath.Join("sets", "*.sh"))
	host := append([]string{"run.sh", "deps.sh", filepath.Join("..", "systemd", "run.sh")}, sets...)
	if len(guest) < 4 {
		t.Fatalf("only %d guest scripts found", len(guest))
	}
	for _, tt := range []struct {
		shell string
		files []string
	}{{sh, guest}, {bash, host}} {
		for _, f := range tt.files {
			if out, err := exec.Command(tt.shell, "-n", f).CombinedOutput(); err != nil {
				t.Errorf("%s -n %s: %v\n%s", tt.shell, f, err, out)
			}
		}
	}
}
