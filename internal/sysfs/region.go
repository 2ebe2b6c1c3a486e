package sysfs

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/devname"
)

const devtypeRegion = "cxl_region"

// maxInterleaveWays is the kernel's limit: target0..target15 are all the
// target attributes a region has.
const maxInterleaveWays = 16

// ndDevicesDir is where libnvdimm lists the nd regions that bound pmem
// regions register.
const ndDevicesDir = "bus/nd/devices"

// ReadRegion reads one region. A region that does not exist, or is
// removed while being read, gives a *NoDeviceError, for which both
// errors.Is(err, fs.ErrNotExist) and errors.Is(err, unix.ENOENT) hold.
// An invalid name gives an error wrapping unix.EINVAL without touching
// sysfs.
func (f *FS) ReadRegion(name string) (Region, error) {
	return readOne(f, "region", name, devname.IsRegion, devtypeRegion, f.readRegion)
}

// NextRegionName reads the name the root decoder offers for the next
// region of type typ ("pmem" or "ram") from create_<typ>_region: the first
// half of the create handshake. When the file is absent (no ram regions
// before v6.3, or a window without that capability) the error wraps
// unix.ENOENT.
func (f *FS) NextRegionName(rootDecoder, typ string) (string, error) {
	if typ != "pmem" && typ != "ram" {
		return "", fmt.Errorf("next region name: region type %q: %w", typ, unix.EINVAL)
	}
	if !devname.IsDecoder(rootDecoder) {
		return "", fmt.Errorf("next region name: decoder name %q: %w", rootDecoder, unix.EINVAL)
	}
	file, err := DeviceAttr(rootDecoder, "create_"+typ+"_region")
	if err != nil {
		return "", err
	}
	b, err := f.b.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if !devname.IsRegion(s) {
		return "", &ParseError{File: file, Value: s, Err: errNotDeviceName}
	}
	return s, nil
}

// readRegion reads a region's attributes and what the kernel registered
// below it. Only Scan and ReadRegion call it, so both report the same.
func (f *FS) readRegion(d *device) (Region, error) {
	// Only regions need their inode (their identity); read it before their
	// attributes, and again after them.
	ino, err := f.dirIno(d)
	if err != nil {
		return Region{}, err
	}
	r := d.attrs
	reg := Region{
		Name:                  d.name,
		RootDecoder:           d.parent(),
		Type:                  "pmem", // before v6.3 there is no mode file and every region is pmem
		Size:                  r.u64("size"),
		InterleaveWays:        r.int("interleave_ways"),
		InterleaveGranularity: r.int("interleave_granularity"),
		Committed:             r.bool("commit"),
		Driver:                r.driver(),
		Locked:                r.optBool("locked"),
	}
	if r.has("mode") {
		reg.Type = strings.TrimSpace(r.str("mode"))
	}
	// v6.1 hides uuid on non-pmem regions; later kernels print an empty
	// line for ram. Absent and empty both mean no uuid.
	if r.has("uuid") {
		reg.UUID = r.uuid("uuid")
	}
	if res := r.u64("resource"); res != math.MaxUint64 && r.err == nil {
		reg.Resource = &res
	}
	if r.err != nil {
		return Region{}, r.err
	}
	if reg.InterleaveWays < 0 || reg.InterleaveWays > maxInterleaveWays {
		r.parseFail("interleave_ways", strconv.Itoa(reg.InterleaveWays), fmt.Errorf("more than %d ways or negative", maxInterleaveWays))
		return Region{}, r.err
	}
	// Only target0..target<ways-1> are visible; read exactly those.
	reg.Targets = make([]string, reg.InterleaveWays)
	for i := range reg.Targets {
		reg.Targets[i] = r.name("target"+strconv.Itoa(i), devname.IsDecoder)
	}
	if r.err != nil {
		return Region{}, r.err
	}
	if err := f.readRegionChildren(d, &reg); err != nil {
		return Region{}, err
	}
	if reg.Memory, err = f.ReadRegionMemory(reg); err != nil {
		return Region{}, fmt.Errorf("region %s memory: %w", reg.Name, err)
	}
	// A region deleted and made again under its name while it was read
	// would mix the attributes of two regions: only a reading of one
	// directory counts, and the old region is gone.
	after, err := f.dirIno(d)
	if err != nil {
		return Region{}, err
	}
	if after != ino {
		return Region{}, &NoDeviceError{Device: d.name, Err: errReplaced}
	}
	reg.Ino = ino
	return reg, nil
}

// dirIno is the inode number of a device's directory.
func (f *FS) dirIno(d *device) (uint64, error) {
	ino, err := f.b.Ino(d.path)
	switch {
	case isGone(err):
		return 0, &NoDeviceError{Device: d.name, Err: err}
	case err != nil:
		return 0, fmt.Errorf("stat %s: %w", d.path, err)
	}
	return ino, nil
}

// errReplaced says a device directory was removed and registered again
// under its name while it was being read.
var errReplaced = errors.New("removed and registered again while being read")

// readRegionChildren fills what the kernel registers asynchronously below
// a bound region. The pmem_regionN and dax_regionN devices are
// directories inside the region's own directory; the nd region lives on
// the nd bus under the nvdimm bridge, so it is found by name.
func (f *FS) readRegionChildren(d *device, reg *Region) error {
	for name := range d.attrs.names {
		switch {
		case devname.IsPmemRegion(name):
			reg.PmemRegion = name
		case devname.IsDAXRegion(name):
			reg.DaxRegion = name
			bound, err := f.linkExists(devicesDir + "/" + name + "/driver")
			if err != nil {
				return err
			}
			reg.DaxRegionBound = bound
		}
	}
	nd, err := f.linkExists(ndDevicesDir + "/" + reg.Name)
	if err != nil || !nd {
		return err
	}
	reg.NDRegion = reg.Name
	reg.NDRegionBound, err = f.linkExists(ndDevicesDir + "/" + reg.Name + "/driver")
	return err
}

// linkExists reports whether a symbolic link is there. Absence (ENOENT,
// or ENODEV while its device is being removed) is an answer, not an error.
func (f *FS) linkExists(name string) (bool, error) {
	_, err := f.b.ReadLink(name)
	switch {
	case err == nil:
		return true, nil
	case isGone(err):
		return false, nil
	case errors.Is(err, unix.ENOTDIR):
		// A path component is not a directory: not there either.
		return false, nil
	}
	return false, fmt.Errorf("readlink %s: %w", name, err)
}
