package sysfs

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/devname"
)

// The decoder device types of the cxl bus.
const (
	devtypeRootDecoder     = "cxl_decoder_root"
	devtypeSwitchDecoder   = "cxl_decoder_switch"
	devtypeEndpointDecoder = "cxl_decoder_endpoint"
)

func readRootDecoder(d *device) (RootDecoder, error) {
	r := d.attrs
	rd := RootDecoder{
		Name:                  d.name,
		Port:                  d.parent(),
		Start:                 r.adminU64("start"),
		Size:                  r.u64("size"),
		Locked:                r.bool("locked"),
		InterleaveWays:        r.int("interleave_ways"),
		InterleaveGranularity: r.int("interleave_granularity"),
		CapPmem:               r.bool("cap_pmem"),
		CapRAM:                r.bool("cap_ram"),
		CapType2:              r.bool("cap_type2"),
		CapType3:              r.bool("cap_type3"),
		TargetList:            r.intList("target_list"),
		QoSClass:              r.optInt("qos_class"),
		CreatePmem:            r.has("create_pmem_region"),
		CreateRAM:             r.has("create_ram_region"),
		DeleteRegion:          r.has("delete_region"),
	}
	return rd, r.err
}

func readSwitchDecoder(d *device) (SwitchDecoder, error) {
	r := d.attrs
	sd := SwitchDecoder{
		Name:                  d.name,
		Port:                  d.parent(),
		Start:                 r.adminU64("start"),
		Size:                  r.u64("size"),
		Locked:                r.bool("locked"),
		InterleaveWays:        r.int("interleave_ways"),
		InterleaveGranularity: r.int("interleave_granularity"),
		TargetList:            r.intList("target_list"),
		TargetType:            strings.TrimSpace(r.str("target_type")),
		Region:                r.name("region", devname.IsRegion),
	}
	return sd, r.err
}

// readEndpointDecoder reads the decoder's own attributes. Memdev is filled
// by the caller, which knows the endpoint ports.
func readEndpointDecoder(d *device) (EndpointDecoder, error) {
	r := d.attrs
	ed := EndpointDecoder{
		Name:        d.name,
		Port:        d.parent(),
		HostBridge:  hostBridge(d.path),
		Mode:        strings.TrimSpace(r.str("mode")),
		DPASize:     r.u64("dpa_size"),
		DPAResource: r.u64("dpa_resource"),
		Start:       r.adminU64("start"),
		Size:        r.u64("size"),
		Locked:      r.bool("locked"),
		Region:      r.name("region", devname.IsRegion),
	}
	return ed, r.err
}

// hostBridge returns the host bridge port above a device: the first port
// below the root in the device's path. With switches in between, that is
// not the parent: root0/port1/port3/endpoint4 has host bridge port1.
func hostBridge(devPath string) string {
	parts := strings.Split(devPath, "/")
	for i, p := range parts {
		if devname.IsRoot(p) && i+1 < len(parts) && devname.IsPort(parts[i+1]) {
			return parts[i+1]
		}
	}
	return ""
}

// readOne is the start of every single-object reader: check the name
// before touching sysfs, open the device, check its kind, read it. what
// names the kind in errors ("root decoder").
func readOne[T any](f *FS, what, name string, valid func(string) bool, devtype string, read func(*device) (T, error)) (T, error) {
	var zero T
	if !valid(name) {
		return zero, fmt.Errorf("read %s: name %q: %w", what, name, unix.EINVAL)
	}
	d, err := f.openDevice(name)
	if err != nil {
		return zero, fmt.Errorf("read %s %s: %w", what, name, err)
	}
	if d.devtype != devtype {
		// ReadRegion("region0") when region0 is, impossibly, a port.
		return zero, fmt.Errorf("cxl device %s is a %q, not a %s", d.name, d.devtype, devtype)
	}
	v, err := read(d)
	if err != nil {
		return zero, fmt.Errorf("read %s %s: %w", what, name, err)
	}
	return v, nil
}

// ReadRootDecoder reads one root decoder, with Targets resolved through
// its root's dports. A decoder that does not exist gives a
// *NoDeviceError.
func (f *FS) ReadRootDecoder(name string) (RootDecoder, error) {
	rd, err := readOne(f, "root decoder", name, devname.IsDecoder, devtypeRootDecoder, readRootDecoder)
	if err != nil {
		return RootDecoder{}, err
	}
	root, err := f.openDevice(rd.Port)
	if err != nil {
		return RootDecoder{}, fmt.Errorf("read root decoder %s: root: %w", name, err)
	}
	_, dportPaths, err := readRoot(root)
	if err != nil {
		return RootDecoder{}, fmt.Errorf("read root decoder %s: root: %w", name, err)
	}
	ports, err := f.hostBridgePorts(rd.Port)
	if err != nil {
		return RootDecoder{}, fmt.Errorf("read root decoder %s: %w", name, err)
	}
	rd.Targets = targetNames(rd.TargetList, mapDports(rd.Port, dportPaths, ports))
	return rd, nil
}

// hostBridgePorts finds the ports directly below root with their uport
// paths, reading only the two links of each port that mapDports needs.
func (f *FS) hostBridgePorts(root string) ([]portInfo, error) {
	names, err := f.b.ReadDir(devicesDir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", devicesDir, err)
	}
	var out []portInfo
	for _, name := range names {
		if !devname.IsPort(name) {
			continue
		}
		link := devicesDir + "/" + name
		target, err := f.b.ReadLink(link)
		if isGone(err) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("readlink %s: %w", link, err)
		}
		d := &device{name: name, path: path.Join(devicesDir, target)}
		if d.parent() != root {
			continue
		}
		uport, err := f.b.ReadLink(link + "/uport")
		if isGone(err) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("readlink %s/uport: %w", link, err)
		}
		out = append(out, portInfo{Port: Port{Name: name, Parent: root}, uportPath: d.resolve(uport)})
	}
	return out, nil
}

// ReadEndpointDecoder reads one endpoint decoder, with the memdev behind
// its endpoint. A decoder that does not exist, or whose endpoint is gone,
// gives a *NoDeviceError.
func (f *FS) ReadEndpointDecoder(name string) (EndpointDecoder, error) {
	ed, err := readOne(f, "endpoint decoder", name, devname.IsDecoder, devtypeEndpointDecoder, readEndpointDecoder)
	if err != nil {
		return EndpointDecoder{}, err
	}
	uport := devicesDir + "/" + ed.Port + "/uport"
	target, err := f.b.ReadLink(uport)
	switch {
	case isGone(err):
		return EndpointDecoder{}, fmt.Errorf("read endpoint decoder %s: %w", name, &NoDeviceError{Device: ed.Port, Err: err})
	case err != nil:
		return EndpointDecoder{}, fmt.Errorf("read endpoint decoder %s: readlink %s: %w", name, uport, err)
	}
	ed.Memdev = path.Base(target)
	return ed, nil
}
