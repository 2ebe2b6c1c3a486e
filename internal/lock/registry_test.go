package lock

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

func TestWriterNames(t *testing.T) {
	reg, _ := newTestRegistry(t)
	tests := []struct {
		name string
		ok   bool
	}{
		{"decoder0.0", true},
		{"decoder12.345", true},
		{"decoder0", false},
		{"decoder0.0.lock", false},
		{"decoder0.0/../x", false},
		{"../decoder0.0", false},
		{"region0", false},
		{"decodera.0", false},
		{"decoder00.0", false}, // decoder0.0's second spelling: a second lock file
		{"decoder0.00", false},
		{"", false},
		{"decoder0.0\n", false},
	}
	for _, tt := range tests {
		w, err := reg.Writer(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("Writer(%q) error = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if tt.ok && w.Name() != tt.name {
			t.Errorf("Writer(%q).Name() = %q", tt.name, w.Name())
		}
		if _, err := LockPath("/run/x", tt.name); (err == nil) != tt.ok {
			t.Errorf("LockPath(%q) error = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// One root decoder has one writer, however often it is asked for.
// Mutation: create a new Writer on every call → the pointers differ.
func TestWriterIsSingle(t *testing.T) {
	reg, _ := newTestRegistry(t)
	a := mustWriter(t, reg, "decoder0.0")
	b := mustWriter(t, reg, "decoder0.0")
	if a != b {
		t.Error("two writers for decoder0.0")
	}
	for _, n := range []string{"decoder2.0", "decoder10.0", "decoder1.1"} {
		mustWriter(t, reg, n)
	}
	var got []string
	for _, w := range reg.Writers() {
		got = append(got, w.Name())
	}
	want := []string{"decoder0.0", "decoder1.1", "decoder10.0", "decoder2.0"}
	if len(got) != len(want) {
		t.Fatalf("Writers() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Writers() = %v, want %v", got, want)
		}
	}
}

func TestRegistryFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "cxlregiond")
	reg, err := NewRegistry(sysfs.Open(t.TempDir()), dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		t.Fatalf("lock dir not created: %v", err)
	}
	w := mustWriter(t, reg, "decoder3.1")
	want := filepath.Join(dir, "decoder3.1.lock")
	if w.LockPath() != want {
		t.Errorf("LockPath() = %q, want %q", w.LockPath(), want)
	}
	if err := w.Do(context.Background(), func(context.Context, *Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	st, err = os.Stat(want)
	if err != nil {
		t.Fatalf("lock file not created: %v", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		t.Errorf("lock file mode %v: others could take the lock and stall the daemon", st.Mode().Perm())
	}
	if _, err := NewRegistry(nil, dir); err == nil {
		t.Error("NewRegistry(nil fs) succeeded")
	}
}

// A lock file replaced while a request waits for it must not let the
// request run beside whoever locks the new file.
// Mutation: skip the samePath check in lockFile → Do runs while the new
// file is locked.
func TestLockFileReplaced(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	unlockOld, err := LockFile(context.Background(), w.LockPath())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Do(context.Background(), func(context.Context, *Tx) error { return nil }) }()
	waitDepth(t, w, 1)
	time.Sleep(5 * time.Millisecond) // Do now polls the old inode

	if err := os.Remove(w.LockPath()); err != nil {
		t.Fatal(err)
	}
	unlockNew, err := LockFile(context.Background(), w.LockPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := unlockOld(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("Do ran (%v) on a replaced lock file while the new one was held", err)
	case <-time.After(150 * time.Millisecond):
	}
	if err := unlockNew(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Do did not run after the new lock file was released")
	}
}

// TestLockDirRemoved: the lock directory removed under a running registry
// (an operator, a tmpfiles clean) is made again at the next turn, with the
// registry's mode, and the turn and its flock work.
//
// Mutation: drop the ENOENT branch in lockFile and Do fails with "open: no
// such file or directory".
func TestLockDirRemoved(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	dir := filepath.Dir(w.LockPath())
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := w.Do(context.Background(), func(context.Context, *Tx) error { return nil }); err != nil {
		t.Fatalf("a turn after the lock directory was removed: %v", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o755 {
		t.Fatalf("lock directory made again with %v, want 0755", st.Mode().Perm())
	}
	if _, err := os.Stat(w.LockPath()); err != nil {
		t.Fatalf("lock file: %v", err)
	}
}
