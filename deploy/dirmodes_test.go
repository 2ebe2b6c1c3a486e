package deploy

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cxlregion/cxlregiond/internal/cxlsim"
	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/region"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// tmpfilesMode is the mode tmpfiles.d gives path.
func tmpfilesMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	b, err := os.ReadFile(tmpfilesFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "d" && f[1] == path {
			m, err := strconv.ParseUint(f[2], 8, 32)
			if err != nil {
				t.Fatalf("%s: mode of %s: %v", tmpfilesFile, path, err)
			}
			return os.FileMode(m)
		}
	}
	t.Fatalf("%s has no line for %s", tmpfilesFile, path)
	return 0
}

// TestDaemonCreatesDirectoriesWithPromisedModes: when the daemon has to
// create its state and lock directories itself (a host without the unit's
// StateDirectory= or the tmpfiles line having run), it creates them with
// the modes the unit and tmpfiles.d promise, under the unit's UMask= and
// under none: the state directory private to root, the lock
// directory readable as tmpfiles makes it.
//
// Mutation: create the lock directory with os.MkdirAll(dir, 0o755) alone
// (as before) and under UMask=0077 it is 0700, not tmpfiles' 0755.
func TestDaemonCreatesDirectoriesWithPromisedModes(t *testing.T) {
	v := unitValues(t, unitFile)
	stateMode, err := strconv.ParseUint(last(v["Service.StateDirectoryMode"]), 8, 32)
	if err != nil {
		t.Fatalf("StateDirectoryMode: %v", err)
	}
	umask, err := strconv.ParseUint(last(v["Service.UMask"]), 8, 32)
	if err != nil {
		t.Fatalf("UMask: %v", err)
	}
	lockMode := tmpfilesMode(t, "/run/cxlregiond/lock")
	k, err := cxlsim.New()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	for _, mask := range []int{int(umask), 0} {
		t.Run("umask "+strconv.FormatInt(int64(mask), 8), func(t *testing.T) {
			old := syscall.Umask(mask)
			defer syscall.Umask(old)
			dir := t.TempDir()
			stateDir, lockDir := filepath.Join(dir, "var/lib/cxlregiond"), filepath.Join(dir, "run/cxlregiond/lock")
			writers, err := lock.NewRegistry(sysfs.New(k), lockDir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := region.New(region.Config{FS: sysfs.New(k), Writers: writers, StateDir: stateDir}); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				path string
				want os.FileMode
			}{
				{stateDir, os.FileMode(stateMode)},
				{lockDir, lockMode},
			} {
				st, err := os.Stat(c.path)
				if err != nil {
					t.Fatal(err)
				}
				if got := st.Mode().Perm(); got != c.want {
					t.Errorf("%s created with mode %04o, the unit promises %04o", c.path, got, c.want)
				}
			}
		})
	}
}
