package sysfs

import "path"

// readRoot reads a CXL root. Dports holds the resolved dport paths; the
// caller maps them to host bridge ports once every port has been read.
func readRoot(d *device) (Root, map[int]string, error) {
	r := Root{Name: d.name, Host: d.parent()}
	paths := d.dports()
	return r, paths, d.attrs.err
}

// readPort reads a host bridge, switch or endpoint port, and returns the
// resolved path of its uport link, which is what a root's dport points to.
func readPort(d *device) (Port, string, error) {
	r := d.attrs
	p := Port{
		Name:              d.name,
		Parent:            d.parent(),
		Driver:            r.driver(),
		DecodersCommitted: r.optInt("decoders_committed"),
	}
	var uport string
	if t := r.link("uport"); t != "" {
		uport = d.resolve(t)
		p.Uport = path.Base(uport)
	}
	return p, uport, r.err
}

func readMemdev(d *device) (Memdev, error) {
	r := d.attrs
	m := Memdev{
		Name:     d.name,
		PmemSize: r.u64("pmem/size"),
		RAMSize:  r.u64("ram/size"),
		Serial:   r.u64("serial"),
		NumaNode: r.int("numa_node"),
		Driver:   r.driver(),
	}
	return m, r.err
}

// mapDports names the host bridge port behind each dport of a root: the
// port below the root whose uport is the dport's device. A dport whose
// port is not (or no longer) enumerated maps to "".
func mapDports(root string, dportPaths map[int]string, ports []portInfo) map[int]string {
	out := make(map[int]string, len(dportPaths))
	for id, p := range dportPaths {
		out[id] = ""
		for _, port := range ports {
			if port.Parent == root && port.uportPath == p {
				out[id] = port.Name
				break
			}
		}
	}
	return out
}

// portInfo is a port with the resolved uport path that mapDports matches.
type portInfo struct {
	Port
	uportPath string
}

// targetNames maps a root decoder's target_list ids to host bridge names,
// position for position ("" for an id the root does not know).
func targetNames(ids []int, dports map[int]string) []string {
	if ids == nil {
		return nil
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = dports[id]
	}
	return out
}
