package lock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

type observed struct {
	attr string
	err  error
}

func TestTxWrite(t *testing.T) {
	var mu sync.Mutex
	var seen []observed
	reg, root := newTestRegistry(t, WithWriteObserver(func(attr string, d time.Duration, err error) {
		if d < 0 {
			t.Errorf("negative write duration %v", d)
		}
		mu.Lock()
		seen = append(seen, observed{attr, err})
		mu.Unlock()
	}))
	if err := os.MkdirAll(filepath.Join(root, "bus/cxl/devices/decoder0.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bus/cxl/devices/decoder0.0/delete_region"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w := mustWriter(t, reg, "decoder0.0")

	tests := []struct {
		name      string
		attr      string
		value     string
		wantErrno unix.Errno // 0: success
		wantFile  string
	}{
		{"writes value and newline", "bus/cxl/devices/decoder0.0/delete_region", "region3", 0, "region3\n"},
		{"missing attribute keeps ENOENT", "bus/cxl/devices/decoder0.0/nope", "1", unix.ENOENT, ""},
		{"path leaving the tree", "../etc/passwd", "x", unix.EINVAL, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			err := w.Do(context.Background(), func(ctx context.Context, tx *Tx) error {
				return tx.Write(tt.attr, tt.value)
			})
			if tt.wantErrno == 0 {
				if err != nil {
					t.Fatal(err)
				}
				b, _ := os.ReadFile(filepath.Join(root, tt.attr))
				if string(b) != tt.wantFile {
					t.Errorf("file holds %q, want %q", b, tt.wantFile)
				}
			} else {
				var we *sysfs.WriteError
				if !errors.As(err, &we) || !errors.Is(err, tt.wantErrno) {
					t.Errorf("Write = %v, want a *sysfs.WriteError with %v", err, tt.wantErrno)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 1 || seen[0].attr != tt.attr || (seen[0].err == nil) != (tt.wantErrno == 0) {
				t.Errorf("observer saw %+v, want one call for %s", seen, tt.attr)
			}
		})
	}
}

// Once an op runs, its writes reach sysfs whatever its ctx says: a create
// that the caller gave up on must still roll back.
// Mutation: make Tx.Write return ctx.Err() when the caller's ctx is done →
// TestTxWriteIgnoresCtx fails.
func TestTxWriteIgnoresCtx(t *testing.T) {
	reg, root := newTestRegistry(t)
	if err := os.WriteFile(filepath.Join(root, "size"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w := mustWriter(t, reg, "decoder0.0")
	ctx, cancel := context.WithCancel(context.Background())
	err := w.Do(ctx, func(ctx context.Context, tx *Tx) error {
		cancel()
		<-ctx.Done()
		return tx.Write("size", "0")
	})
	if err != nil {
		t.Fatalf("write after the caller's ctx ended: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "size")); string(b) != "0\n" {
		t.Errorf("file holds %q, want %q", b, "0\n")
	}
}

// A Tx kept past its op would write without the turn.
// Mutation: drop tx.end in Do → the late write succeeds.
func TestTxUnusableAfterOp(t *testing.T) {
	reg, root := newTestRegistry(t)
	if err := os.WriteFile(filepath.Join(root, "commit"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w := mustWriter(t, reg, "decoder0.0")
	var kept *Tx
	if err := w.Do(context.Background(), func(ctx context.Context, tx *Tx) error { kept = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := kept.Write("commit", "1"); err == nil {
		t.Error("a Tx wrote after its op ended")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "commit")); len(b) != 0 {
		t.Errorf("late write reached the file: %q", b)
	}
}

// Do hands op's error back unchanged, so the engine can branch on it.
func TestDoReturnsOpError(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	want := errors.New("region busy")
	if got := w.Do(context.Background(), func(context.Context, *Tx) error { return want }); got != want {
		t.Errorf("Do = %v, want op's error %v", got, want)
	}
}

// A panicking op must not keep the turn or the flock.
// Mutation: release the turn after op without defer → the next Do hangs.
func TestDoReleasesOnPanic(t *testing.T) {
	reg, _ := newTestRegistry(t)
	w := mustWriter(t, reg, "decoder0.0")
	func() {
		defer func() { _ = recover() }()
		_ = w.Do(context.Background(), func(context.Context, *Tx) error { panic("op bug") })
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := w.Do(ctx, func(context.Context, *Tx) error { return nil }); err != nil {
		t.Fatalf("Do after a panicking op: %v", err)
	}
}

// BenchmarkWrite compares one raw FS.Write with the same write through an
// uncontended Do (turn + open/flock/close of the lock file).
func BenchmarkWrite(b *testing.B) {
	reg, root := newTestRegistry(b)
	if err := os.WriteFile(filepath.Join(root, "size"), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	fs := sysfs.Open(root)
	w := mustWriter(b, reg, "decoder0.0")
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			if err := fs.Write("size", "268435456"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("do", func(b *testing.B) {
		ctx := context.Background()
		op := func(ctx context.Context, tx *Tx) error { return tx.Write("size", "268435456") }
		for b.Loop() {
			if err := w.Do(ctx, op); err != nil {
				b.Fatal(err)
			}
		}
	})
}
