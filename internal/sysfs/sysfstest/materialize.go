// Package sysfstest builds sysfs trees on disk from captures of real
// kernels, so tests read and write the same paths the daemon uses on a
// host, through the ordinary sysfs.Dir backend.
//
// # Capture format
//
// A capture (testdata/<kernel>/<N>-<state>.txt, copied from the real
// kernels' captures: docs/kernel.md#captures) is a snapshot of /sys/bus/cxl/devices, one entry a line,
// paths relative to /sys/bus/cxl/devices:
//
//	decoder0.0 -> ../../../devices/platform/ACPI0017:00/root0/decoder0.0
//	decoder0.0/size<TAB>0444<TAB>0x100000000\n
//	mem0/pmem/size<TAB>0444<TAB>0x10000000\n
//	port1/driver -> ../../../../../bus/cxl/drivers/cxl_port
//
// A line "dev -> target" is a device's bus link; "dev/sub/file<TAB>mode<TAB>value"
// a readable attribute whose value escapes "\" "\n" "\t" as \\ \n \t and
// other bytes as \xNN; "dev/name -> target" a link inside the device
// directory, its target relative to that directory, as the kernel gives
// it. A value "<read error: ...>" (an attribute whose read(2) failed on
// the capture host) is not supported: Materialize fails the test.
//
// # What Materialize builds
//
// Under t.TempDir(), as the kernel lays it out:
//   - each device's directory at its link target (devices/platform/...),
//     and bus/cxl/devices/<dev> as a relative symlink to it, so child
//     devices (region0/pmem_region0) appear inside their parent's directory;
//   - every attribute as a regular file with the captured content and
//     mode, and every link with its captured target; a link's target
//     directory is created when it lies inside the tree (driver links
//     point into bus/<bus>/drivers/<drv>, dport/uport links to
//     devices/...);
//   - the write-only attributes of write-only.txt (next to the capture)
//     that were seen in the capture's state, as empty files with their
//     mode, so that writes to them succeed;
//   - bind and unbind in every driver directory that a link points to, and
//     always in bus/cxl/drivers/{cxl_region,cxl_port} and
//     bus/platform/drivers/cxl_acpi: the kernel keeps a registered
//     driver's files whatever is bound.
//
// With WithListing, the nd and dax bus entries of a
// "<N>-...-listing.txt" file (ls -l of /sys/bus/nd/devices and
// /sys/bus/dax/devices) become links under bus/nd/devices and
// bus/dax/devices with their target directories. The listing shows no
// driver links; WithBound adds them, because which nd devices are bound is
// known only from the uevent captures.
//
// The tree differs from sysfs where a file system cannot imitate kernfs:
// root may write a 0444 or read a 0200 file (the kernel answers EACCES to
// both), and a write does not run a store method; it replaces nothing and
// is not checked. internal/cxlsim models behaviour; these trees model
// layout and content.
package sysfstest

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// Option changes what Materialize builds.
type Option func(*config)

type config struct {
	listings []string
	bound    []binding
}

type binding struct{ bus, dev, driver string }

// WithListing adds the nd and dax bus devices of an ls -l listing file
// (5-bound-nd-dax-dev-listing.txt), unbound.
func WithListing(file string) Option {
	return func(c *config) { c.listings = append(c.listings, file) }
}

// WithBound makes bus/<bus>/devices/<dev> bound to driver: a driver link in
// the device's directory, and the driver's directory. The device must be
// in the tree (from the capture or a listing).
func WithBound(bus, dev, driver string) Option {
	return func(c *config) { c.bound = append(c.bound, binding{bus, dev, driver}) }
}

// Materialize builds the tree of a capture file in t.TempDir() and returns
// an FS over it. Any problem with the capture fails the test.
func Materialize(t testing.TB, captureFile string, opts ...Option) *sysfs.FS {
	t.Helper()
	root := t.TempDir()
	if err := Build(root, captureFile, opts...); err != nil {
		t.Fatalf("materialize %s: %v", captureFile, err)
	}
	return sysfs.Open(root)
}

// Build writes the tree of a capture file under root, which must exist.
// Materialize is the usual entry point; Build serves benchmarks and tools
// that manage their own directory.
func Build(root, captureFile string, opts ...Option) error {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	entries, err := readCapture(captureFile)
	if err != nil {
		return err
	}
	b := &builder{root: root}
	for _, dir := range []string{"bus/cxl/devices", "bus/cxl/drivers/cxl_region", "bus/cxl/drivers/cxl_port",
		"bus/platform/drivers/cxl_acpi"} {
		if err := b.mkdir(dir); err != nil {
			return err
		}
	}
	for _, drv := range []string{"bus/cxl/drivers/cxl_region", "bus/cxl/drivers/cxl_port", "bus/platform/drivers/cxl_acpi"} {
		if err := b.driverFiles(drv); err != nil {
			return err
		}
	}

	// Devices first, so that attributes and links have a directory.
	devDir := make(map[string]string) // device name -> real directory
	for _, e := range entries {
		if strings.Contains(e.path, "/") || !e.link {
			continue
		}
		devPath := path.Join("bus/cxl/devices", e.target)
		if !filepath.IsLocal(devPath) || !strings.HasPrefix(devPath, "devices/") {
			return fmt.Errorf("%s:%d: device link %s -> %s leaves devices/", captureFile, e.line, e.path, e.target)
		}
		devDir[e.path] = devPath
		if err := b.mkdir(devPath); err != nil {
			return err
		}
		if err := b.symlink(e.target, path.Join("bus/cxl/devices", e.path)); err != nil {
			return err
		}
	}
	for _, e := range entries {
		dev, rest, ok := strings.Cut(e.path, "/")
		if !ok {
			if !e.link {
				return fmt.Errorf("%s:%d: attribute %s outside a device directory", captureFile, e.line, e.path)
			}
			continue
		}
		devPath, found := devDir[dev]
		if !found {
			return fmt.Errorf("%s:%d: %s belongs to no device of the capture", captureFile, e.line, e.path)
		}
		if !filepath.IsLocal(rest) {
			return fmt.Errorf("%s:%d: path %s leaves its device", captureFile, e.line, e.path)
		}
		name := path.Join(devPath, rest)
		if err := b.mkdir(path.Dir(name)); err != nil {
			return err
		}
		if !e.link {
			if err := b.file(name, e.mode, []byte(e.value)); err != nil {
				return err
			}
			continue
		}
		if path.Base(rest) == "driver" && !isDriverDir(path.Join(path.Dir(name), e.target)) {
			return fmt.Errorf("%s:%d: driver link %s -> %s does not point to bus/<bus>/drivers/<driver>", captureFile, e.line, e.path, e.target)
		}
		if err := b.link(e.target, name); err != nil {
			return err
		}
	}
	if err := b.writeOnly(captureFile, devDir); err != nil {
		return err
	}
	for _, l := range cfg.listings {
		if err := b.listing(l); err != nil {
			return err
		}
	}
	for _, bd := range cfg.bound {
		if err := b.bind(bd); err != nil {
			return err
		}
	}
	return nil
}

// entry is one line of a capture.
type entry struct {
	line   int
	path   string // relative to bus/cxl/devices
	link   bool
	target string      // link target
	mode   os.FileMode // attribute mode
	value  string      // attribute content, unescaped
}

func readCapture(file string) ([]entry, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		e, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, n, err)
		}
		e.line = n
		out = append(out, e)
	}
	return out, sc.Err()
}

func parseLine(line string) (entry, error) {
	if p, rest, ok := strings.Cut(line, "\t"); ok {
		modeStr, raw, ok := strings.Cut(rest, "\t")
		if !ok {
			return entry{}, fmt.Errorf("attribute line %q has no value field", line)
		}
		mode, err := strconv.ParseUint(modeStr, 8, 32)
		if err != nil || mode > 0o777 {
			return entry{}, fmt.Errorf("attribute %s: mode %q is not octal permission bits", p, modeStr)
		}
		if strings.HasPrefix(raw, "<read error:") {
			return entry{}, fmt.Errorf("attribute %s: %s: captured read errors are not supported", p, raw)
		}
		v, err := Unescape(raw)
		if err != nil {
			return entry{}, fmt.Errorf("attribute %s: %w", p, err)
		}
		return entry{path: p, mode: os.FileMode(mode), value: v}, cleanPath(p)
	}
	if p, target, ok := strings.Cut(line, " -> "); ok {
		return entry{path: p, link: true, target: target}, cleanPath(p)
	}
	return entry{}, fmt.Errorf("line %q is neither an attribute nor a link", line)
}

func cleanPath(p string) error {
	if p == "" || !filepath.IsLocal(p) || path.Clean(p) != p {
		return fmt.Errorf("path %q is not a clean relative path", p)
	}
	return nil
}

// Unescape decodes a captured value: \\ \n \t and \xNN.
func Unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("value %q ends in a lone backslash", s)
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'x':
			if i+2 >= len(s) {
				return "", fmt.Errorf("value %q: truncated \\x escape", s)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf("value %q: bad \\x escape %q", s, s[i+1:i+3])
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			return "", fmt.Errorf("value %q: unknown escape \\%c", s, s[i])
		}
	}
	return b.String(), nil
}

// builder creates paths relative to root.
type builder struct{ root string }

func (b *builder) abs(name string) string { return filepath.Join(b.root, filepath.FromSlash(name)) }

func (b *builder) mkdir(name string) error { return os.MkdirAll(b.abs(name), 0o755) }

func (b *builder) symlink(target, name string) error {
	err := os.Symlink(target, b.abs(name))
	if os.IsExist(err) {
		if old, rerr := os.Readlink(b.abs(name)); rerr == nil && old == target {
			return nil
		}
	}
	return err
}

// file writes an attribute. The mode is set after writing, so a 0444 or
// 0200 attribute gets its content too.
func (b *builder) file(name string, mode os.FileMode, data []byte) error {
	p := b.abs(name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// link creates a link inside a device directory and the directory it
// points to, when that lies inside the tree.
func (b *builder) link(target, name string) error {
	if err := b.symlink(target, name); err != nil {
		return err
	}
	dest := path.Join(path.Dir(name), target)
	if !filepath.IsLocal(dest) {
		return nil
	}
	if err := b.mkdir(dest); err != nil {
		return err
	}
	if isDriverDir(dest) {
		return b.driverFiles(dest)
	}
	return nil
}

// isDriverDir reports whether name is bus/<bus>/drivers/<driver>.
func isDriverDir(name string) bool {
	parts := strings.Split(name, "/")
	return len(parts) == 4 && parts[0] == "bus" && parts[2] == "drivers"
}

func (b *builder) driverFiles(dir string) error {
	for _, f := range []string{"bind", "unbind"} {
		p := path.Join(dir, f)
		if _, err := os.Lstat(b.abs(p)); err == nil {
			continue
		}
		if err := b.file(p, 0o200, nil); err != nil {
			return err
		}
	}
	return nil
}

// writeOnly creates the write-only attributes listed next to the capture
// for the capture's state.
func (b *builder) writeOnly(captureFile string, devDir map[string]string) error {
	list := filepath.Join(filepath.Dir(captureFile), "write-only.txt")
	data, err := os.ReadFile(list)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	state := strings.TrimSuffix(filepath.Base(captureFile), ".txt")
	for n, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		fields := strings.Split(line, "\t")
		if len(fields) != 3 {
			return fmt.Errorf("%s:%d: want path, mode and states", list, n+1)
		}
		if !slices.Contains(strings.Split(fields[2], ","), state) {
			continue
		}
		mode, err := strconv.ParseUint(fields[1], 8, 32)
		if err != nil || mode > 0o777 {
			return fmt.Errorf("%s:%d: mode %q is not octal permission bits", list, n+1, fields[1])
		}
		dev, rest, ok := strings.Cut(fields[0], "/")
		devPath, found := devDir[dev]
		if !ok || !found || cleanPath(rest) != nil {
			return fmt.Errorf("%s:%d: %s is not an attribute of a device in %s", list, n+1, fields[0], captureFile)
		}
		if err := b.file(path.Join(devPath, rest), os.FileMode(mode), nil); err != nil {
			return err
		}
	}
	return nil
}

// listing adds the bus entries of an ls -l listing of /sys/bus/nd/devices
// and /sys/bus/dax/devices.
func (b *builder) listing(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var bus string
	for n, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasSuffix(line, ":") && strings.HasPrefix(line, "/"):
			bus = ""
			dir := strings.TrimSuffix(strings.TrimSuffix(line, ":"), "/")
			if parts := strings.Split(dir, "/"); len(parts) == 5 && parts[1] == "sys" && parts[2] == "bus" && parts[4] == "devices" {
				bus = parts[3]
			}
		case bus != "" && strings.Contains(line, " -> "):
			left, target, _ := strings.Cut(line, " -> ")
			fields := strings.Fields(left)
			name := fields[len(fields)-1]
			if cleanPath(name) != nil || strings.Contains(name, "/") {
				return fmt.Errorf("%s:%d: bad device name %q", file, n+1, name)
			}
			devices := path.Join("bus", bus, "devices")
			dest := path.Join(devices, target)
			if !filepath.IsLocal(dest) || !strings.HasPrefix(dest, "devices/") {
				return fmt.Errorf("%s:%d: link %s -> %s leaves devices/", file, n+1, name, target)
			}
			if err := b.mkdir(devices); err != nil {
				return err
			}
			if err := b.mkdir(dest); err != nil {
				return err
			}
			if err := b.symlink(target, path.Join(devices, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// bind adds a driver link to a device already in the tree.
func (b *builder) bind(bd binding) error {
	link := path.Join("bus", bd.bus, "devices", bd.dev)
	target, err := os.Readlink(b.abs(link))
	if err != nil {
		return fmt.Errorf("bind %s to %s: %w", link, bd.driver, err)
	}
	devPath := path.Join(path.Dir(link), target)
	driverDir := path.Join("bus", bd.bus, "drivers", bd.driver)
	rel, err := filepath.Rel(filepath.FromSlash(devPath), filepath.FromSlash(driverDir))
	if err != nil {
		return err
	}
	if err := b.mkdir(driverDir); err != nil {
		return err
	}
	if err := b.driverFiles(driverDir); err != nil {
		return err
	}
	return b.symlink(filepath.ToSlash(rel), path.Join(devPath, "driver"))
}
