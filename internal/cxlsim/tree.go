package cxlsim

import (
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The sysfs.Backend side of the model: paths resolve to a device and an
// attribute, a link, a sub-directory or a child device, as kernfs lays
// them out. Paths are accepted in their bus form
// (bus/cxl/devices/region0/size) and in their devices/ form
// (devices/platform/ACPI0017:00/root0/decoder0.0/region0/size).

// attr is one attribute file of a device.
type attr struct {
	name  string // may contain one "/" (mem0's pmem/size)
	mode  uint32
	show  func() string
	store func(data []byte) error // runs with k.mu held; may drop it while it waits
}

// node is what a path resolves to.
type node struct {
	dev    *device
	rest   string // path below the device directory
	attr   *attr
	link   string // absolute sysfs path of a link's target
	isLink bool
	isDir  bool   // device directory or attribute sub-directory
	driver string // a driver directory bus/<bus>/drivers/<drv>
	drvBus string
}

func pathErr(op, name string, errno unix.Errno) error {
	return &fs.PathError{Op: op, Path: name, Err: errno}
}

// drivers are the drivers registered on each bus, by profile.
func (k *Kernel) drivers(bus string) []string {
	switch bus {
	case "cxl":
		d := []string{"cxl_mem", "cxl_nvdimm", "cxl_nvdimm_bridge", "cxl_pmem_region", "cxl_port", "cxl_region"}
		if k.st.Profile != Profile61 {
			d = append(d, "cxl_dax_region")
		}
		slices.Sort(d)
		return d
	case "nd":
		return []string{"dax_pmem", "nd_bus", "nd_pmem", "nd_region", "nvdimm"}
	case "dax":
		return []string{"device_dax", "kmem"}
	case "platform":
		return []string{"cxl_acpi"}
	}
	return nil
}

// resolve finds what name is (k.mu held).
func (k *Kernel) resolve(name string) (node, bool) {
	name = strings.Trim(path.Clean("/"+name), "/")
	comps := strings.Split(name, "/")
	var d *device
	var rest []string
	switch {
	case len(comps) >= 4 && comps[0] == "bus" && comps[2] == "devices":
		d = k.busDev(comps[1], comps[3])
		if d == nil {
			return node{}, false
		}
		rest = comps[4:]
	case len(comps) >= 4 && comps[0] == "bus" && comps[2] == "drivers":
		if !slices.Contains(k.drivers(comps[1]), comps[3]) {
			return node{}, false
		}
		n := node{driver: comps[3], drvBus: comps[1]}
		switch len(comps) {
		case 4:
			n.isDir = true
			return n, true
		case 5:
			switch comps[4] {
			case "bind", "unbind":
				n.attr = &attr{name: comps[4], mode: 0o200, store: k.driverStore(comps[1], comps[3], comps[4])}
				return n, true
			}
			for _, dev := range k.bus[comps[1]] {
				if dev.driver == comps[3] && dev.name == comps[4] {
					n.isLink, n.link = true, dev.path
					return n, true
				}
			}
		}
		return node{}, false
	case len(comps) >= 1 && comps[0] == "devices":
		for i := len(comps); i >= 1; i-- {
			if d = k.devAt(strings.Join(comps[:i], "/")); d != nil {
				rest = comps[i:]
				break
			}
		}
		if d == nil {
			return node{}, false
		}
	default:
		return node{}, false
	}
	// Descend into child devices (decoder0.0/region0/pmem_region0).
	for len(rest) > 0 {
		c := k.devAt(d.path + "/" + rest[0])
		if c == nil {
			break
		}
		d, rest = c, rest[1:]
	}
	n := node{dev: d, rest: strings.Join(rest, "/")}
	if n.rest == "" {
		n.isDir = true
		return n, true
	}
	attrs, links := k.view(d)
	if t, ok := links[n.rest]; ok {
		n.isLink, n.link = true, t
		return n, true
	}
	for i := range attrs {
		a := &attrs[i]
		if a.name == n.rest {
			n.attr = a
			return n, true
		}
		if strings.HasPrefix(a.name, n.rest+"/") {
			n.isDir = true
			return n, true
		}
	}
	return node{}, false
}

// ReadFile implements sysfs.Backend.
func (k *Kernel) ReadFile(name string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if name == "kernel/uevent_seqnum" {
		// The last SEQNUM the kernel handed out (lib/kobject_uevent.c).
		return []byte(strconv.FormatUint(k.st.Seqnum, 10) + "\n"), nil
	}
	n, ok := k.resolve(name)
	switch {
	case !ok:
		return nil, pathErr("open", name, unix.ENOENT)
	case n.isDir || n.isLink: // every link points to a directory
		return nil, pathErr("read", name, unix.EISDIR)
	case n.attr.show == nil:
		return nil, pathErr("open", name, unix.EACCES)
	}
	return []byte(n.attr.show()), nil
}

// ReadDir implements sysfs.Backend: the sorted names in a directory.
func (k *Kernel) ReadDir(name string) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	clean := strings.Trim(path.Clean("/"+name), "/")
	comps := strings.Split(clean, "/")
	if len(comps) == 3 && comps[0] == "bus" && (comps[2] == "devices" || comps[2] == "drivers") {
		var out []string
		if comps[2] == "drivers" {
			out = k.drivers(comps[1])
		} else {
			for n := range k.bus[comps[1]] {
				out = append(out, n)
			}
		}
		if out == nil && k.drivers(comps[1]) == nil {
			return nil, pathErr("open", name, unix.ENOENT)
		}
		slices.Sort(out)
		return out, nil
	}
	n, ok := k.resolve(clean)
	switch {
	case !ok:
		return nil, pathErr("open", name, unix.ENOENT)
	case n.driver != "" && n.isDir:
		out := []string{"bind", "uevent", "unbind"}
		for _, d := range k.bus[n.drvBus] {
			if d.driver == n.driver {
				out = append(out, d.name)
			}
		}
		slices.Sort(out)
		return out, nil
	case n.isLink:
		// Following a link to a device directory.
		if d := k.devAt(n.link); d != nil {
			return k.listDevice(d, ""), nil
		}
		return nil, pathErr("open", name, unix.ENOENT)
	case !n.isDir:
		return nil, pathErr("open", name, unix.ENOTDIR)
	}
	return k.listDevice(n.dev, n.rest), nil
}

// listDevice lists a device directory (sub == "") or one of its
// attribute sub-directories.
func (k *Kernel) listDevice(d *device, sub string) []string {
	attrs, links := k.view(d)
	set := map[string]bool{}
	prefix := ""
	if sub != "" {
		prefix = sub + "/"
	}
	for _, a := range attrs {
		if !strings.HasPrefix(a.name, prefix) {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(a.name, prefix), "/")
		set[first] = true
	}
	if sub == "" {
		for l := range links {
			set[l] = true
		}
		for _, c := range k.children(d.path) {
			set[c.name] = true
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Ino implements sysfs.Backend for device directories (by their bus link
// or their path): a new number for every device registered, as kernfs
// gives. Other paths give EINVAL: nothing reads theirs.
func (k *Kernel) Ino(name string) (uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n, ok := k.resolve(name)
	switch {
	case !ok:
		return 0, pathErr("stat", name, unix.ENOENT)
	case n.dev == nil || n.rest != "" || n.driver != "":
		return 0, pathErr("stat", name, unix.EINVAL)
	}
	return n.dev.ino, nil
}

// ReadLink implements sysfs.Backend: the target relative to the link's
// directory, computed as kernfs does (up to the common ancestor of the
// link's directory and the target's parent, then down).
func (k *Kernel) ReadLink(name string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	clean := strings.Trim(path.Clean("/"+name), "/")
	comps := strings.Split(clean, "/")
	// bus/<bus>/devices/<dev> is the bus's symlink to the device.
	if len(comps) == 4 && comps[0] == "bus" && comps[2] == "devices" {
		if d := k.busDev(comps[1], comps[3]); d != nil {
			return relLink(path.Dir(clean), d.path), nil
		}
		return "", pathErr("readlink", name, unix.ENOENT)
	}
	n, ok := k.resolve(clean)
	switch {
	case !ok:
		return "", pathErr("readlink", name, unix.ENOENT)
	case !n.isLink:
		return "", pathErr("readlink", name, unix.EINVAL)
	case n.driver != "":
		return relLink(path.Dir(clean), n.link), nil
	}
	dir := n.dev.path
	if i := strings.LastIndex(n.rest, "/"); i >= 0 {
		dir += "/" + n.rest[:i]
	}
	return relLink(dir, n.link), nil
}

// relLink is kernfs_get_target_path.
func relLink(fromDir, target string) string {
	from := strings.Split(fromDir, "/")
	to := strings.Split(target, "/")
	parent := to[:len(to)-1]
	common := 0
	for common < len(from) && common < len(parent) && from[common] == parent[common] {
		common++
	}
	return strings.Repeat("../", len(from)-common) + strings.Join(to[common:], "/")
}
