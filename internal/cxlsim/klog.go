package cxlsim

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// klog is the model's dmesg: one line per write received and the kernel's
// own WARNING and BUG reports, shaped like the real ones so that
// `grep -c 'WARNING:'` and `grep -c 'BUG:'` count the same things in a
// real dmesg and in this log.
type klog struct {
	mu    sync.Mutex // guards every field below it
	w     io.Writer
	lines []string
	max   int
	clock Clock
	start int64
	pid   int
}

func (l *klog) init(w io.Writer, max int, cl Clock) {
	l.w = w
	l.max = max
	l.clock = cl
	l.start = cl.Now().UnixNano()
	l.pid = 1000
}

func (l *klog) stamp() string {
	ns := l.clock.Now().UnixNano() - l.start
	if ns < 0 {
		ns = 0
	}
	return fmt.Sprintf("[%5d.%06d] ", ns/1e9, (ns%1e9)/1e3)
}

// printf adds one line.
func (l *klog) printf(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addLocked(fmt.Sprintf(format, a...))
}

// kernel adds lines with dmesg timestamps.
func (l *klog) kernel(lines ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.stamp()
	for _, s := range lines {
		l.addLocked(ts + s)
	}
}

func (l *klog) addLocked(s string) {
	if l.max > 0 {
		if len(l.lines) >= l.max {
			l.lines = append(l.lines[:0], l.lines[len(l.lines)-l.max/2:]...)
		}
		l.lines = append(l.lines, s)
	}
	if l.w != nil {
		_, _ = io.WriteString(l.w, s+"\n")
	}
}

func (l *klog) nextPID() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pid++
	return l.pid
}

// Log returns the lines logged so far (the newest WithLogLines of them).
func (k *Kernel) Log() []string {
	k.klog.mu.Lock()
	defer k.klog.mu.Unlock()
	return append([]string(nil), k.klog.lines...)
}

// Counts returns how many kernel WARNINGs and BUGs (oopses, KASAN
// reports) the kernel has printed since it was first booted.
func (k *Kernel) Counts() (warn, bug int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.st.Warn, k.st.Bug
}

// Writes counts the writes received on attributes whose path ends with
// attrSuffix ("decoder0.0/delete_region", "cxl_region/bind"), whatever
// their result. With a value it counts only writes of that value
// (trailing newline ignored).
func (k *Kernel) Writes(attrSuffix string, value ...string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	if len(value) == 0 {
		for p, c := range k.st.Writes {
			if strings.HasSuffix(p, attrSuffix) {
				n += c
			}
		}
		return n
	}
	for key, c := range k.st.WriteValues {
		p, v, _ := strings.Cut(key, "\x00")
		if strings.HasSuffix(p, attrSuffix) && v == value[0] {
			n += c
		}
	}
	return n
}

// logWrite records one write and its result (k.mu held).
func (k *Kernel) logWrite(name string, data []byte, err error) {
	v := strings.TrimSuffix(string(data), "\n")
	k.st.Writes[name]++
	k.st.WriteValues[name+"\x00"+v]++
	k.klog.printf("cxlsim: write %s %q -> %s", name, v, resultName(err))
}

func resultName(err error) string {
	if err == nil {
		return "ok"
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		if name := unix.ErrnoName(errno); name != "" {
			return name
		}
		return fmt.Sprintf("errno %d", int(errno))
	}
	return err.Error()
}

const (
	hwName  = "Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.2-debian-1.16.2-1 04/01/2014"
	modules = "Modules linked in: dax_cxl dax_pmem device_dax cxl_pmem cxl_mem cxl_pci cxl_acpi nd_pmem nd_btt libnvdimm"
)

func (k *Kernel) cpuLine(cpu, pid int) string {
	if k.st.Profile == Profile61 {
		return fmt.Sprintf("CPU: %d PID: %d Comm: cxlsim Not tainted 6.1.0-56-amd64 #1  Debian 6.1.192-2", cpu, pid)
	}
	return fmt.Sprintf("CPU: %d UID: 0 PID: %d Comm: cxlsim Not tainted 6.12.107+deb12-amd64 #1  Debian 6.12.107-1~deb12u1", cpu, pid)
}

// syscallTail is the user-entry part of a trace from a sysfs write.
var syscallTail = []string{
	" kernfs_fop_write_iter+0x12f/0x210",
	" vfs_write+0x28f/0x450",
	" ksys_write+0x6f/0xf0",
	" do_syscall_64+0x87/0x1b0",
	" entry_SYSCALL_64_after_hwframe+0x76/0x7e",
}

// warnDevres prints the WARNING devm_release_action gives when the devres
// entry it should release is gone (race 1 and race 2), as the lab's trace
// shows it (docs/kernel.md#race-warn). caller is the store method.
func (k *Kernel) warnDevres(caller string) {
	k.st.Warn++
	pid := k.klog.nextPID()
	line, off := 797, "0x7d/0x90"
	if k.st.Profile == Profile61 {
		line, off = 793, "0x79/0x90"
	}
	lines := []string{
		"------------[ cut here ]------------",
		fmt.Sprintf("WARNING: CPU: %d PID: %d at drivers/base/devres.c:%d devm_release_action+%s", pid%2, pid, line, off),
		modules,
		k.cpuLine(pid%2, pid),
		hwName,
		"RIP: 0010:devm_release_action+" + off,
		"Call Trace:",
		" <TASK>",
		" ? __pfx_unregister_region+0x10/0x10",
		" " + caller,
	}
	lines = append(lines, syscallTail...)
	lines = append(lines, " </TASK>", "---[ end trace 0000000000000000 ]---")
	k.klog.kernel(lines...)
}

// warnCacheSync is 6.12's dev_WARN when commit cannot invalidate CPU
// caches under a hypervisor (docs/kernel.md#commit-hypervisor).
func (k *Kernel) warnCacheSync(region string) {
	k.st.Warn++
	pid := k.klog.nextPID()
	lines := []string{
		"------------[ cut here ]------------",
		"cxl " + region + ": Failed to synchronize CPU cache state",
		fmt.Sprintf("WARNING: CPU: %d PID: %d at drivers/cxl/core/region.c:235 commit_store+0x141/0x370", pid%2, pid),
		modules,
		k.cpuLine(pid%2, pid),
		hwName,
		"RIP: 0010:commit_store+0x141/0x370",
		"Call Trace:",
		" <TASK>",
	}
	lines = append(lines, syscallTail...)
	lines = append(lines, " </TASK>", "---[ end trace 0000000000000000 ]---")
	k.klog.kernel(lines...)
}

// oopsNd prints the NULL pointer dereference libnvdimm hits when an nd
// region is unregistered before its asynchronous registration ran
// (docs/kernel.md#nd-oops). store is the sysfs store method that started
// the teardown.
func (k *Kernel) oopsNd(store []string) {
	k.st.Bug++
	pid := k.klog.nextPID()
	lines := []string{
		"BUG: kernel NULL pointer dereference, address: 00000000000000d0",
		"#PF: supervisor read access in kernel mode",
		"#PF: error_code(0x0000) - not-present page",
		"Oops: Oops: 0000 [#1] PREEMPT SMP NOPTI",
		k.cpuLine(pid%2, pid),
		hwName,
		"RIP: 0010:kill_device+0xf/0x30",
		"Call Trace:",
		" <TASK>",
		" nd_device_unregister+0x42/0x90 [libnvdimm]",
		" release_nodes+0x40/0xb0",
		" devres_release_all+0x8c/0xc0",
		" device_unbind_cleanup+0xe/0x70",
		" device_release_driver_internal+0x1c4/0x200",
		" bus_remove_device+0xeb/0x1b0",
		" device_del+0x163/0x3e0",
		" device_unregister+0x17/0x60",
		" devm_release_action+0x51/0x90",
		" cxlr_release_nvdimm+0x45/0x70",
		" release_nodes+0x40/0xb0",
		" devres_release_all+0x8c/0xc0",
		" device_unbind_cleanup+0xe/0x70",
		" device_release_driver_internal+0x1c4/0x200",
	}
	for _, s := range store {
		lines = append(lines, " "+s)
	}
	lines = append(lines, syscallTail...)
	lines = append(lines, " </TASK>", modules, "CR2: 00000000000000d0", "---[ end trace 0000000000000000 ]---",
		"RIP: 0010:kill_device+0xf/0x30", fmt.Sprintf("note: cxlsim[%d] exited with irqs disabled", pid))
	k.klog.kernel(lines...)
}

// kasanConstruct prints the use-after-free KASAN reports when a region is
// unregistered while __construct_region still initializes it (race 3).
func (k *Kernel) kasanConstruct(region string) {
	k.st.Bug++
	pid := k.klog.nextPID()
	lines := []string{
		"==================================================================",
		"BUG: KASAN: slab-use-after-free in __construct_region+0x2d5/0x6f0 [cxl_core]",
		"Write of size 4 at addr ff11000005a1c8a0 by task kworker/u8:2/" + fmt.Sprint(pid-1),
		"",
		k.cpuLine(pid%2, pid-1),
		hwName,
		"Workqueue: async async_run_entry_fn",
		"Call Trace:",
		" <TASK>",
		" dump_stack_lvl+0x5d/0x80",
		" print_report+0xc1/0x5e0",
		" kasan_report+0xb9/0xf0",
		" __construct_region+0x2d5/0x6f0 [cxl_core]",
		" cxl_add_to_region+0x1b2/0x5a0 [cxl_core]",
		" discover_region+0x46/0x80 [cxl_port]",
		" device_for_each_child+0x5e/0xa0",
		" cxl_endpoint_port_probe+0x1a3/0x1e0 [cxl_port]",
		" </TASK>",
		"",
		fmt.Sprintf("Freed by task %d:", pid),
		" kfree+0xd6/0x2f0",
		" cxl_region_release+0x5c/0x80 [cxl_core]",
		" device_release+0x34/0x90",
		" kobject_put+0x8a/0x1b0",
		" unregister_region+0x6a/0x80 [cxl_core]",
		" devm_release_action+0x51/0x90",
		" delete_region_store+0x6d/0x90 [cxl_core]",
		" kernfs_fop_write_iter+0x12f/0x210",
		"",
		"The buggy address belongs to the object of " + region,
		"==================================================================",
	}
	k.klog.kernel(lines...)
}
