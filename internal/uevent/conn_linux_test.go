package uevent

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cxlregion/cxlregiond/internal/sysfs"
)

// listen opens the kernel's uevent socket or skips the test when the
// sandbox does not allow it.
func listen(t *testing.T, opts ...Option) *Conn {
	t.Helper()
	c, err := Listen(opts...)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) ||
		errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) {
		t.Skipf("cannot open a NETLINK_KOBJECT_UEVENT socket here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ueventTrigger is a device whose uevent file makes the kernel send a
// "change" event, written through internal/sysfs (the package that owns
// /sys).
type ueventTrigger struct {
	sys     *sysfs.FS
	attr    string // e.g. devices/virtual/net/lo/uevent
	devPath string // the event's DEVPATH
}

func (tr ueventTrigger) fire() error { return tr.sys.Write(tr.attr, "change") }

// findTrigger returns a uevent file this test may write, or skips.
func findTrigger(t *testing.T) ueventTrigger {
	t.Helper()
	sys := sysfs.Open("/sys")
	var errs []error
	for _, dev := range []string{"devices/virtual/net/lo", "devices/virtual/mem/null", "devices/virtual/mem/zero"} {
		tr := ueventTrigger{sys: sys, attr: dev + "/uevent", devPath: "/" + dev}
		err := tr.fire()
		if err == nil {
			return tr
		}
		errs = append(errs, err)
	}
	t.Skipf("no writable uevent file to make the kernel send an event: %v", errors.Join(errs...))
	return ueventTrigger{}
}

// kernelSeqnum reads the kernel's last uevent SEQNUM.
func kernelSeqnum(t *testing.T) uint64 {
	t.Helper()
	s, err := sysfs.Open("/sys").ReadString("kernel/uevent_seqnum")
	if err != nil {
		t.Skipf("cannot read /sys/kernel/uevent_seqnum: %v", err)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// receiveChange receives until the trigger's change event arrives.
func receiveChange(t *testing.T, c *Conn, tr ueventTrigger) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		ev, err := c.Receive(ctx)
		if errors.Is(err, ErrResync) {
			continue // other activity on the host overflowed us; not this test's point
		}
		if err != nil {
			t.Fatalf("waiting for change@%s: %v", tr.devPath, err)
		}
		if ev.Action == Change && ev.DevPath == tr.devPath {
			return ev
		}
	}
}

// A real kernel event arrives through the socket, after a Receive that
// ended on its ctx.
// Mutation: leave the past read deadline in place after a cancelled Receive
// → the second Receive fails at once with a deadline error.
func TestListenReceivesKernelEvent(t *testing.T) {
	c := listen(t, WithFilter(AllEvents))
	if c.ReceiveBufferSize() < 1<<20 {
		t.Logf("receive buffer only %d bytes (no CAP_NET_ADMIN?)", c.ReceiveBufferSize())
	}
	tr := findTrigger(t)
	receiveChange(t, c, tr) // the event findTrigger made

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	for {
		_, err := c.Receive(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil && !errors.Is(err, ErrResync) {
			t.Fatalf("Receive with a short deadline: %v", err)
		}
	}

	before := kernelSeqnum(t)
	if err := tr.fire(); err != nil {
		t.Fatal(err)
	}
	ev := receiveChange(t, c, tr)
	if ev.Seqnum <= before {
		t.Errorf("event SEQNUM %d, want after %d", ev.Seqnum, before)
	}
	if st := c.Stats(); st.Delivered < 2 || st.Foreign != 0 {
		t.Errorf("stats %+v", st)
	}
}

// Anyone may send to the uevent group; the Conn drops what did not come from
// the kernel.
// Mutation: make Sender.fromKernel return true → the forged cxl event is
// delivered.
func TestListenDropsUserspaceSender(t *testing.T) {
	c := listen(t, WithFilter(AllEvents))
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		t.Skipf("cannot open a second uevent socket: %v", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatal(err)
	}
	forged := []byte("remove@/devices/platform/ACPI0017:00/root0/decoder0.0/region0\x00ACTION=remove\x00DEVPATH=/devices/platform/ACPI0017:00/root0/decoder0.0/region0\x00SUBSYSTEM=cxl\x00DEVTYPE=cxl_region\x00SEQNUM=1\x00")
	err = unix.Sendto(fd, forged, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: kernelGroup})
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		t.Skipf("sandbox does not let userspace send to the uevent group: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	for {
		ev, err := c.Receive(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil && !errors.Is(err, ErrResync) {
			t.Fatal(err)
		}
		if ev.DevType == "cxl_region" {
			t.Fatalf("forged event from userspace delivered: %+v", ev)
		}
	}
	if st := c.Stats(); st.Foreign == 0 {
		t.Errorf("stats %+v: the forged message was not seen as foreign", st)
	}
}

// An overflowing socket reports one resync with ENOBUFS, drops what was
// queued before the loss, and goes on with the newest events.
// Mutation: skip drain() → the next Receive returns a stale queued event
// (SEQNUM older than the trigger) or a second resync.
func TestListenOverflow(t *testing.T) {
	c := listen(t, WithFilter(AllEvents), WithReceiveBuffer(4096))
	tr := findTrigger(t)
	for range 300 {
		if err := tr.fire(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Receive(ctx)
	if !errors.Is(err, ErrResync) || !errors.Is(err, unix.ENOBUFS) {
		t.Fatalf("Receive after 300 events into a %d-byte buffer = %v, want ErrResync with ENOBUFS", c.ReceiveBufferSize(), err)
	}
	before := kernelSeqnum(t)
	if err := tr.fire(); err != nil {
		t.Fatal(err)
	}
	ev, err := c.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive after the overflow: %v", err)
	}
	if ev.Seqnum <= before {
		t.Errorf("after the overflow Receive returned %+v, queued before the loss (kernel SEQNUM was %d)", ev, before)
	}
	if st := c.Stats(); st.Overflows != 1 {
		t.Errorf("stats %+v, want 1 overflow", st)
	}
}

// Receive returns promptly when its ctx ends or the Conn closes, and leaves
// no goroutine behind.
// Mutation: ignore ctx in Receive (no AfterFunc deadline) → the cancel case
// blocks and the test times out.
func TestReceiveUnblocks(t *testing.T) {
	c := listen(t, WithFilter(func(_, _, _, _ []byte) bool { return false }))
	base := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Receive(ctx); done <- err }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Receive after cancel = %v, want Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Receive did not return when its ctx was cancelled")
	}

	go func() { _, err := c.Receive(context.Background()); done <- err }()
	time.Sleep(20 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("Receive after Close = %v, want os.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Receive did not return when the Conn was closed")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := c.Receive(context.Background()); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Receive on a closed Conn = %v", err)
	}
	waitGoroutines(t, base)
}

func waitGoroutines(t *testing.T, max int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > max {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), max, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestParseCredentials(t *testing.T) {
	cred := unix.Ucred{Pid: 1, Uid: 0, Gid: 0}
	good := unix.UnixCredentials(&cred)
	other := unix.UnixRights(3) // SCM_RIGHTS, not credentials
	tests := []struct {
		name   string
		oob    []byte
		ok     bool
		wantID uint32
	}{
		{"credentials", good, true, 0},
		{"non-root", unix.UnixCredentials(&unix.Ucred{Pid: 7, Uid: 1000}), true, 1000},
		{"rights then credentials", append(append([]byte{}, other...), good...), true, 0},
		{"rights only", other, false, 0},
		{"empty", nil, false, 0},
		{"truncated header", good[:unix.SizeofCmsghdr-1], false, 0},
		{"truncated credentials", good[:unix.CmsgLen(0)+4], false, 0},
	}
	for _, tt := range tests {
		got, ok := parseCredentials(tt.oob)
		if ok != tt.ok || (ok && got.Uid != tt.wantID) {
			t.Errorf("%s: parseCredentials = %+v, %v; want ok=%v uid %d", tt.name, got, ok, tt.ok, tt.wantID)
		}
	}
	// A control message whose length lies must not read past the buffer.
	lying := append([]byte{}, good...)
	(*unix.Cmsghdr)(unsafe.Pointer(&lying[0])).Len = uint64(len(lying) + 64)
	if _, ok := parseCredentials(lying); ok {
		t.Error("accepted a control message longer than its buffer")
	}
	if n := testing.AllocsPerRun(100, func() { parseCredentials(good) }); n != 0 {
		t.Errorf("parseCredentials allocates %v times", n)
	}
}
