package main

import (
	"flag"
	"fmt"
	"strings"
	"time"
)

// runCleanup deletes every region under the root decoder and frees the
// endpoint's DPA, one writer at a time, so that a scenario that failed and
// left a region behind does not fail every scenario after it. It prints what
// it removed; the guest reports that, since a leftover is worth knowing.
func runCleanup(args []string) error {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	sys := fs.String("sys", "/sys", "sysfs mount point")
	if err := fs.Parse(args); err != nil {
		return err
	}
	topo, err := discover(*sys, "", "")
	if err != nil {
		return err
	}
	removed, err := topo.removeAll()
	if len(removed) > 0 {
		fmt.Printf("removed %s\n", strings.Join(removed, " "))
	}
	return err
}

// removeAll is the single-writer teardown the kernel accepts in any state:
// delete_region unbinds and detaches by itself (docs/kernel.md#delete); only the
// DPA stays allocated.
func (t topology) removeAll() ([]string, error) {
	var removed []string
	for _, name := range t.regions() {
		if err := writeAttr(t.cxl(t.root, "delete_region"), name); err != nil {
			return removed, err
		}
		if err := waitFor(name+" removal", 10*time.Second, func() bool { return !exists(t.cxl(name)) }); err != nil {
			return removed, err
		}
		removed = append(removed, name)
	}
	dpa, err := t.endpointDPA()
	if err != nil {
		return removed, err
	}
	if dpa != 0 {
		if err := t.freeDPA(); err != nil {
			return removed, err
		}
		removed = append(removed, fmt.Sprintf("%s-dpa=%#x", t.endpoint, dpa))
	}
	return removed, nil
}
