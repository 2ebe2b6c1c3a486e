package sysfs

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

const (
	devtypePort   = "cxl_port"
	devtypeMemdev = "cxl_memdev"

	// scanRetries is how many more times Scan reads a device whose
	// attribute vanished under it while its directory stayed
	// (changedError): a device being torn down is gone by then, one
	// replaced under the same name reads whole.
	scanRetries = 2
)

// Scan reads every device of the cxl bus into a Topology.
//
// sysfs changes while it is read: a device removed between the listing of
// bus/cxl/devices and the reading of its attributes (ENOENT, or ENODEV
// from a device being removed) is left out of the result. A device whose
// attribute, listed when its directory was read, is gone when read while
// the directory stays (torn down attribute by attribute, or replaced by a
// new device of the same name) is read again from the start, up to
// scanRetries more times. Anything else
// that fails (an unreadable or malformed attribute, a required attribute
// missing from a device that is still there) fails the whole scan; a
// malformed value gives a *ParseError naming the file and the value.
//
// Scan reads, relative to the sysfs root (D is a device, "if listed"
// means only when the ReadDir of D shows the name):
//
//	ReadDir  bus/cxl/devices
//	ReadLink bus/cxl/devices/D                      every device
//	ReadDir  bus/cxl/devices/D                      every device
//	ReadFile D/devtype, or D/uevent without one     every device (memdevs have no devtype)
//	ReadLink D/driver                               ports, endpoints, memdevs, regions, if listed
//	ReadLink root*/dport<N>                         each listed dportN
//	ReadFile port*|endpoint*/decoders_committed     if listed
//	ReadLink port*|endpoint*/uport                  if listed
//	ReadFile root decoder: start (if listed; EACCES gives nil), size, locked,
//	         interleave_ways, interleave_granularity, cap_pmem, cap_ram,
//	         cap_type2, cap_type3, target_list, qos_class (if listed);
//	         create_pmem_region, create_ram_region, delete_region: presence only
//	ReadFile switch decoder: start, size, locked, interleave_ways,
//	         interleave_granularity, target_list, target_type, region
//	ReadFile endpoint decoder: mode, dpa_size, dpa_resource, start, size, locked, region
//	ReadFile memdev: pmem/size, ram/size, serial, numa_node
//	ReadFile region: size, interleave_ways, interleave_granularity, commit,
//	         resource, target0..target<ways-1>, mode, uuid, locked (last three if listed)
//	ReadLink bus/cxl/devices/dax_region<N>/driver  for a listed dax_regionN in the region's directory
//	ReadLink bus/nd/devices/region<N>, bus/nd/devices/region<N>/driver   every region
//
// and, only after a read failed with ENOENT, ReadDir bus/cxl/devices/D again
// to tell a vanished device from a missing attribute.
//
// Devices of types Scan does not know (nvdimm bridges, cxl_nvdimm) are
// skipped, so a newer kernel's additions do not break it. When the cxl bus
// itself is absent the error wraps the backend's ENOENT.
func (f *FS) Scan() (*Topology, error) {
	names, err := f.b.ReadDir(devicesDir)
	if err != nil {
		return nil, fmt.Errorf("scan: list %s: %w", devicesDir, err)
	}
	var (
		t          Topology
		rootDports = make(map[string]map[int]string) // root name -> dport id -> resolved path
		ports      []portInfo
	)
	for _, name := range names {
		var err error
		for try := 0; ; try++ {
			var d *device
			d, err = f.openDevice(name)
			if err == nil {
				err = f.scanDevice(d, &t, rootDports, &ports)
			}
			var changed *changedError
			if !errors.As(err, &changed) || try == scanRetries {
				break
			}
			// A device_del in progress takes microseconds more to
			// remove the link and directory; give it a millisecond.
			time.Sleep(time.Millisecond)
		}
		var gone *NoDeviceError
		if errors.As(err, &gone) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
	}

	for i := range t.Roots {
		t.Roots[i].Dports = mapDports(t.Roots[i].Name, rootDports[t.Roots[i].Name], ports)
	}
	for i, rd := range t.RootDecoders {
		for _, root := range t.Roots {
			if root.Name == rd.Port {
				t.RootDecoders[i].Targets = targetNames(rd.TargetList, root.Dports)
			}
		}
	}
	memdevOf := make(map[string]string, len(t.Endpoints)) // endpoint -> memdev
	for _, ep := range t.Endpoints {
		memdevOf[ep.Name] = ep.Uport
	}
	for i, ed := range t.EndpointDecoders {
		t.EndpointDecoders[i].Memdev = memdevOf[ed.Port]
	}
	for i, m := range t.Memdevs {
		for _, ep := range t.Endpoints {
			if ep.Uport == m.Name {
				t.Memdevs[i].Endpoint = ep.Name
			}
		}
	}

	sortByName(t.Roots, func(v Root) string { return v.Name })
	sortByName(t.Ports, func(v Port) string { return v.Name })
	sortByName(t.Endpoints, func(v Port) string { return v.Name })
	sortByName(t.RootDecoders, func(v RootDecoder) string { return v.Name })
	sortByName(t.SwitchDecoders, func(v SwitchDecoder) string { return v.Name })
	sortByName(t.EndpointDecoders, func(v EndpointDecoder) string { return v.Name })
	sortByName(t.Memdevs, func(v Memdev) string { return v.Name })
	sortByName(t.Regions, func(v Region) string { return v.Name })
	return &t, nil
}

// scanDevice reads one device into t according to its type.
func (f *FS) scanDevice(d *device, t *Topology, rootDports map[string]map[int]string, ports *[]portInfo) error {
	switch d.devtype {
	case devtypePort:
		switch {
		case strings.HasPrefix(d.name, "root"):
			root, dports, err := readRoot(d)
			if err != nil {
				return err
			}
			t.Roots = append(t.Roots, root)
			rootDports[root.Name] = dports
		default:
			p, uport, err := readPort(d)
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.name, "endpoint") {
				t.Endpoints = append(t.Endpoints, p)
			} else {
				t.Ports = append(t.Ports, p)
				*ports = append(*ports, portInfo{Port: p, uportPath: uport})
			}
		}
	case devtypeRootDecoder:
		rd, err := readRootDecoder(d)
		if err != nil {
			return err
		}
		t.RootDecoders = append(t.RootDecoders, rd)
	case devtypeSwitchDecoder:
		sd, err := readSwitchDecoder(d)
		if err != nil {
			return err
		}
		t.SwitchDecoders = append(t.SwitchDecoders, sd)
	case devtypeEndpointDecoder:
		ed, err := readEndpointDecoder(d)
		if err != nil {
			return err
		}
		t.EndpointDecoders = append(t.EndpointDecoders, ed)
	case devtypeMemdev:
		m, err := readMemdev(d)
		if err != nil {
			return err
		}
		t.Memdevs = append(t.Memdevs, m)
	case devtypeRegion:
		reg, err := f.readRegion(d)
		if err != nil {
			return err
		}
		t.Regions = append(t.Regions, reg)
	}
	return nil
}
