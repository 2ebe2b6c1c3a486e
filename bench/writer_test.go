package bench

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cxlregion/cxlregiond/internal/lock"
	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// BenchmarkWriter isolates the single writer: a turn of Writer.Do (FIFO
// turn, open and flock of the lock file, unlock) around one Tx.Write,
// against the same FS.Write alone, on a kernel with no delays. The write
// sets an endpoint decoder's mode to the mode it has, which the kernel
// accepts every time.
func BenchmarkWriter(b *testing.B) {
	k := newKernel(b, zeroDelays()...)
	fs := sysfs.New(k)
	writers, err := lock.NewRegistry(fs, filepath.Join(b.TempDir(), "lock"))
	if err != nil {
		b.Fatal(err)
	}
	w, err := writers.Writer(root)
	if err != nil {
		b.Fatal(err)
	}
	attr, err := sysfs.DeviceAttr(firstEndpointDecoder(b, fs, root), "mode")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	viaWriter := func() error {
		return w.Do(ctx, func(_ context.Context, tx *lock.Tx) error { return tx.Write(attr, "pmem") })
	}
	raw := func() error { return fs.Write(attr, "pmem") }
	var writer, direct stopwatch
	odd := false
	for b.Loop() {
		if odd {
			direct.time(b, "raw write", raw)
			writer.time(b, "writer write", viaWriter)
		} else {
			writer.time(b, "writer write", viaWriter)
			direct.time(b, "raw write", raw)
		}
		odd = !odd
	}
	b.ReportMetric(writer.nsPerOp(), "writer-ns/op")
	b.ReportMetric(direct.nsPerOp(), "raw-ns/op")
	b.ReportMetric(writer.nsPerOp()/direct.nsPerOp(), "writer/raw")
}
