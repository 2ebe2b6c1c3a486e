package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// regionState is how far a region is taken before the deleters are released.
type regionState string

const (
	stateCreated     regionState = "created"     // create handshake only
	stateUncommitted regionState = "uncommitted" // configured, targets set, not committed
	stateCommitted   regionState = "committed"   // commit 1, no driver
	stateBound       regionState = "bound"       // bound to cxl_region, nd side settled
)

func parseState(s string) (regionState, error) {
	switch st := regionState(s); st {
	case stateCreated, stateUncommitted, stateCommitted, stateBound:
		return st, nil
	}
	return "", fmt.Errorf("unknown state %q (created|uncommitted|committed|bound)", s)
}

// topology names the two decoders a one-device pmem region needs. The
// endpoint decoder is discovered, not assumed: after a cxl_acpi rebind the
// kernel may number the endpoint anew.
type topology struct {
	sys      string // sysfs mount point, normally /sys
	root     string // root decoder with create_pmem_region, e.g. decoder0.0
	endpoint string // endpoint decoder, e.g. decoder2.0
}

func (t topology) cxl(elem ...string) string {
	return filepath.Join(append([]string{t.sys, "bus/cxl/devices"}, elem...)...)
}

func discover(sys, root, endpoint string) (topology, error) {
	t := topology{sys: sys, root: root, endpoint: endpoint}
	if t.root == "" {
		cands, _ := filepath.Glob(t.cxl("decoder*", "create_pmem_region"))
		if len(cands) == 0 {
			return t, errors.New("no root decoder with create_pmem_region under bus/cxl/devices")
		}
		sort.Strings(cands)
		t.root = filepath.Base(filepath.Dir(cands[0]))
	}
	if t.endpoint == "" {
		cands, _ := filepath.Glob(t.cxl("endpoint*", "decoder*"))
		if len(cands) == 0 {
			return t, errors.New("no endpoint decoder under bus/cxl/devices/endpoint*")
		}
		sort.Strings(cands)
		t.endpoint = filepath.Base(cands[0])
	}
	return t, nil
}

// writeAttr is one open+write+close, the way a shell `echo` does it, keeping
// the errno: the kernel's answer is the thing under test.
func writeAttr(path, value string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	_, werr := unix.Write(fd, []byte(value+"\n"))
	cerr := unix.Close(fd)
	if werr != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, werr)
	}
	if cerr != nil {
		return fmt.Errorf("close %s: %w", path, cerr)
	}
	return nil
}

func readAttr(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// waitFor polls cond every few milliseconds: sysfs has no change
// notification and the guest has no udev.
func waitFor(what string, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// regions lists the regionN children of the root decoder.
func (t topology) regions() []string {
	m, _ := filepath.Glob(t.cxl(t.root, "region*"))
	names := make([]string, 0, len(m))
	for _, p := range m {
		names = append(names, filepath.Base(p))
	}
	sort.Strings(names)
	return names
}

// createRaw runs the create handshake: read the next name, write it back.
// EBUSY/ENXIO mean another creator won the name; read again.
func (t topology) createRaw() (string, error) {
	attr := t.cxl(t.root, "create_pmem_region")
	var last error
	for range 50 {
		name, err := readAttr(attr)
		if err != nil {
			return "", err
		}
		if err := writeAttr(attr, name); err != nil {
			last = err
			time.Sleep(5 * time.Millisecond)
			continue
		}
		return name, waitFor(name+" in sysfs", 5*time.Second, func() bool { return exists(t.cxl(name)) })
	}
	return "", fmt.Errorf("create handshake: %w", last)
}

// bringTo configures a freshly created region up to st, in the order the
// kernel requires (docs/kernel.md#config-order, the capture's lifecycle.log).
func (t topology) bringTo(name string, st regionState, size uint64, settle time.Duration, ndWait bool) error {
	if st == stateCreated {
		return nil
	}
	r := func(a string) string { return t.cxl(name, a) }
	ep := func(a string) string { return t.cxl(t.endpoint, a) }
	steps := []struct{ path, value string }{
		{r("uuid"), newUUID()},
		{r("interleave_granularity"), "256"},
		{r("interleave_ways"), "1"},
		{r("size"), strconv.FormatUint(size, 10)},
	}
	for _, s := range steps {
		if err := writeAttr(s.path, s.value); err != nil {
			return err
		}
	}
	if mode, _ := readAttr(ep("mode")); mode != "pmem" {
		if err := writeAttr(ep("dpa_size"), "0"); err != nil {
			return err
		}
		if err := writeAttr(ep("mode"), "pmem"); err != nil {
			return err
		}
	}
	if err := writeAttr(ep("dpa_size"), strconv.FormatUint(size, 10)); err != nil {
		return err
	}
	if err := writeAttr(r("target0"), t.endpoint); err != nil {
		return err
	}
	if st == stateUncommitted {
		return nil
	}
	if err := writeAttr(r("commit"), "1"); err != nil {
		return err
	}
	if st == stateCommitted {
		return nil
	}
	if err := writeAttr(filepath.Join(t.sys, "bus/cxl/drivers/cxl_region/bind"), name); err != nil {
		return err
	}
	if ndWait {
		if err := t.waitNDSettled(); err != nil {
			return err
		}
	}
	time.Sleep(settle)
	return nil
}

// waitNDSettled waits until libnvdimm has registered the nd region, bound its
// driver and added the dax seed (its last child). Deleting before that oopses
// 6.1 and 6.12 (docs/kernel.md#nd-oops) even with serialized writers.
func (t topology) waitNDSettled() error {
	nd := filepath.Join(t.sys, "bus/nd/devices")
	return waitFor("nd region bound with its dax seed", 20*time.Second, func() bool {
		drv, _ := filepath.Glob(filepath.Join(nd, "region*", "driver"))
		dax, _ := filepath.Glob(filepath.Join(nd, "region*", "dax*"))
		return len(drv) > 0 && len(dax) > 0
	})
}

// endpointDPA returns the endpoint decoder's dpa_size.
func (t topology) endpointDPA() (uint64, error) {
	s, err := readAttr(t.cxl(t.endpoint, "dpa_size"))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(s, 0, 64)
}

// freeDPA returns the endpoint capacity: delete_region does not (docs/kernel.md#delete).
func (t topology) freeDPA() error {
	return writeAttr(t.cxl(t.endpoint, "dpa_size"), "0")
}
