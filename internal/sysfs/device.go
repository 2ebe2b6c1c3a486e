package sysfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// NoDeviceError is a cxl device that does not exist, or that the kernel
// removed while it was being read. errors.Is(err, fs.ErrNotExist) and
// errors.Is(err, unix.ENOENT) both hold for it, whatever errno the kernel
// gave (a device being removed answers ENODEV); Err keeps that errno.
type NoDeviceError struct {
	Device string
	Err    error
}

func (e *NoDeviceError) Error() string {
	return fmt.Sprintf("cxl device %s does not exist: %v", e.Device, e.Err)
}

func (e *NoDeviceError) Unwrap() error { return e.Err }

// Is makes both spellings of "not found" match, so callers need not know
// which one a backend uses.
func (e *NoDeviceError) Is(target error) bool {
	return target == fs.ErrNotExist || target == unix.ENOENT
}

// isGone reports whether err says a sysfs object is not there: ENOENT for
// a removed file or directory, ENODEV for an attribute of a device that the
// kernel is removing (kernfs deactivates it before unlinking it).
func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV)
}

// device is one entry of bus/cxl/devices, opened for reading.
type device struct {
	name    string
	path    string // real location, e.g. "devices/platform/ACPI0017:00/root0/decoder0.0"
	devtype string
	attrs   *attrReader
}

// parent is the name of the device the kernel registered this one under:
// a region's root decoder, a decoder's port, a port's parent port.
func (d *device) parent() string { return path.Base(path.Dir(d.path)) }

// resolve turns a link target found in the device directory into a path
// relative to the sysfs root. Link targets are relative to the directory
// the link is in, which is the device's real directory, not the
// bus/cxl/devices symlink that led there.
func (d *device) resolve(target string) string { return path.Join(d.path, target) }

// openDevice finds the device's real directory, lists it and reads its
// type. A device that is gone gives a *NoDeviceError.
func (f *FS) openDevice(name string) (*device, error) {
	link := devicesDir + "/" + name
	target, err := f.b.ReadLink(link)
	if err != nil {
		if isGone(err) {
			return nil, &NoDeviceError{Device: name, Err: err}
		}
		return nil, fmt.Errorf("readlink %s: %w", link, err)
	}
	devPath := path.Join(devicesDir, target)
	if !strings.HasPrefix(devPath, "devices/") || path.Base(devPath) != name {
		return nil, &ParseError{File: link, Value: target, Err: errors.New("link does not point to a device directory")}
	}
	entries, err := f.b.ReadDir(link)
	if err != nil {
		if isGone(err) {
			return nil, &NoDeviceError{Device: name, Err: err}
		}
		return nil, fmt.Errorf("list %s: %w", link, err)
	}
	d := &device{name: name, path: devPath, attrs: &attrReader{b: f.b, dev: name, dir: link, names: make(map[string]bool, len(entries))}}
	for _, e := range entries {
		d.attrs.names[e] = true
	}
	d.devtype = d.attrs.devtype()
	if err := d.attrs.err; err != nil {
		return nil, err
	}
	return d, nil
}

// attrReader reads the attributes of one device and remembers the first
// failure, so a reader parses a dozen fields in a row and checks err once
// (procfs's value parser, with the reading folded in). After a failure
// every method returns a zero value without touching sysfs.
type attrReader struct {
	b     Backend
	dev   string          // device name
	dir   string          // "bus/cxl/devices/<dev>"
	names map[string]bool // entries of the device directory when it was opened
	err   error
}

// has reports whether the device directory listed attr. Optional
// attributes are detected this way: by presence, never by kernel version.
func (r *attrReader) has(attr string) bool { return r.names[attr] }

func (r *attrReader) file(attr string) string { return r.dir + "/" + attr }

// fail records err unless an earlier failure is already recorded.
func (r *attrReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// readErr turns a failed read into the error to record. ENOENT or ENODEV
// mean the device went away, unless its link is still there: then one
// attribute is missing, which is a real error naming the file.
func (r *attrReader) readErr(file string, err error) error {
	if isGone(err) && (errors.Is(err, unix.ENODEV) || r.deviceGone()) {
		return &NoDeviceError{Device: r.dev, Err: err}
	}
	if isGone(err) && r.listed(file) {
		return &changedError{file: file, err: err}
	}
	return fmt.Errorf("read %s: %w", file, err)
}

// listed reports whether the device directory listed file's first
// component when it was opened.
func (r *attrReader) listed(file string) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(file, r.dir+"/"), "/")
	return r.names[first]
}

// changedError is an attribute the device directory listed when it was
// opened and that was gone when read, while the device's link and
// directory are still there. The kernel removes a device's attributes
// before its bus link and directory (device_del), and reuses a freed
// region id at once, so this is a device torn down under the reader, or
// replaced by a new one of the same name, more often than a real missing
// file; Scan reads such a device again (scanRetries) before it reports it.
type changedError struct {
	file string
	err  error
}

func (e *changedError) Error() string {
	return fmt.Sprintf("read %s: %v (listed when the device was opened, gone when read)", e.file, e.err)
}

func (e *changedError) Unwrap() error { return e.err }

// deviceGone lists the device directory through its bus link: gone when
// either the link or the directory behind it is.
func (r *attrReader) deviceGone() bool {
	_, err := r.b.ReadDir(r.dir)
	return err != nil && isGone(err)
}

// raw reads attr with one trailing newline removed. ok is false after any
// failure, which is then recorded.
func (r *attrReader) raw(attr string) (s string, ok bool) {
	if r.err != nil {
		return "", false
	}
	file := r.file(attr)
	b, err := r.b.ReadFile(file)
	if err != nil {
		r.fail(r.readErr(file, err))
		return "", false
	}
	return strings.TrimSuffix(string(b), "\n"), true
}

func (r *attrReader) parseFail(attr, value string, err error) {
	r.fail(&ParseError{File: r.file(attr), Value: value, Err: err})
}

func (r *attrReader) str(attr string) string {
	s, _ := r.raw(attr)
	return s
}

func (r *attrReader) u64(attr string) uint64 {
	s, ok := r.raw(attr)
	if !ok {
		return 0
	}
	v, err := parseU64(s)
	if err != nil {
		r.parseFail(attr, s, err)
	}
	return v
}

// adminU64 reads a 0400 attribute (a decoder's start): nil when absent or
// when the caller may not read it, which is not an error for a daemon that
// can still do its work without it.
func (r *attrReader) adminU64(attr string) *uint64 {
	if r.err != nil || !r.has(attr) {
		return nil
	}
	file := r.file(attr)
	b, err := r.b.ReadFile(file)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		return nil
	}
	if err != nil {
		r.fail(r.readErr(file, err))
		return nil
	}
	s := strings.TrimSuffix(string(b), "\n")
	v, err := parseU64(s)
	if err != nil {
		r.parseFail(attr, s, err)
		return nil
	}
	return &v
}

func (r *attrReader) int(attr string) int {
	s, ok := r.raw(attr)
	if !ok {
		return 0
	}
	v, err := parseInt(s)
	if err != nil {
		r.parseFail(attr, s, err)
	}
	return v
}

func (r *attrReader) optInt(attr string) *int {
	if !r.has(attr) {
		return nil
	}
	v := r.int(attr)
	if r.err != nil {
		return nil
	}
	return &v
}

func (r *attrReader) bool(attr string) bool {
	s, ok := r.raw(attr)
	if !ok {
		return false
	}
	v, err := parseBool(s)
	if err != nil {
		r.parseFail(attr, s, err)
	}
	return v
}

func (r *attrReader) optBool(attr string) *bool {
	if !r.has(attr) {
		return nil
	}
	v := r.bool(attr)
	if r.err != nil {
		return nil
	}
	return &v
}

func (r *attrReader) intList(attr string) []int {
	s, ok := r.raw(attr)
	if !ok {
		return nil
	}
	v, err := parseIntList(s)
	if err != nil {
		r.parseFail(attr, s, err)
	}
	return v
}

func (r *attrReader) uuid(attr string) string {
	s, ok := r.raw(attr)
	if !ok {
		return ""
	}
	v, err := parseUUID(s)
	if err != nil {
		r.parseFail(attr, s, err)
	}
	return v
}

// name reads an attribute holding a device name or an empty line (a
// region's targetN, a decoder's region) and checks it with valid.
func (r *attrReader) name(attr string, valid func(string) bool) string {
	s, ok := r.raw(attr)
	if !ok {
		return ""
	}
	s = strings.TrimSpace(s)
	if s != "" && !valid(s) {
		r.parseFail(attr, s, errNotDeviceName)
		return ""
	}
	return s
}

// link reads a symbolic link in the device directory; "" when absent.
func (r *attrReader) link(attr string) string {
	if r.err != nil || !r.has(attr) {
		return ""
	}
	file := r.file(attr)
	target, err := r.b.ReadLink(file)
	if err != nil {
		err = r.readErr(file, err)
		// A driver link disappears on unbind: a state, not an error,
		// unless the whole device went away with it.
		var nodev *NoDeviceError
		if !errors.As(err, &nodev) && errors.Is(err, fs.ErrNotExist) {
			return ""
		}
		r.fail(err)
		return ""
	}
	return target
}

// driver returns the name of the bound driver, "" when unbound.
func (r *attrReader) driver() string {
	if t := r.link("driver"); t != "" {
		return path.Base(t)
	}
	return ""
}

// devtype reads the device type. Memdevs have no devtype file (the
// captures of 6.1 and 6.12 show none); their uevent file carries
// DEVTYPE=cxl_memdev, as it does for every cxl device.
func (r *attrReader) devtype() string {
	if r.has("devtype") {
		return strings.TrimSpace(r.str("devtype"))
	}
	s, ok := r.raw("uevent")
	if !ok {
		return ""
	}
	for line := range strings.SplitSeq(s, "\n") {
		if v, found := strings.CutPrefix(line, "DEVTYPE="); found {
			return v
		}
	}
	return ""
}

// dports returns the ids and resolved paths of the dportN links of a port
// directory, e.g. 12 -> "devices/pci0000:0c".
func (d *device) dports() map[int]string {
	r := d.attrs
	out := make(map[int]string)
	for name := range r.names {
		idStr, ok := strings.CutPrefix(name, "dport")
		if !ok {
			continue
		}
		id, err := strconv.Atoi(idStr)
		if err != nil {
			continue // not a dport link
		}
		if t := r.link(name); t != "" {
			out[id] = d.resolve(t)
		}
	}
	return out
}
