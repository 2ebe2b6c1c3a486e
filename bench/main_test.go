package bench

import (
	"os"
	"testing"
)

// TestMain removes what the benchmarks of this process shared: the large
// host's tree on tmpfs and the built binaries. Nothing is built unless a
// benchmark asks for it.
func TestMain(m *testing.M) {
	code := m.Run()
	removeLargeTree()
	removeBinaries()
	os.Exit(code)
}
