package uevent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Conn is the kernel's uevent socket (AF_NETLINK, NETLINK_KOBJECT_UEVENT,
// group 1). It implements Source. Receive may be called from one goroutine
// at a time; Close from any.
type Conn struct {
	f         *os.File // non-blocking, so the runtime poller waits for it
	rc        syscall.RawConn
	stream    *stream
	rcvbuf    int
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	mu  sync.Mutex // one Receive at a time, serialized: it owns the buffers below
	buf []byte
	oob []byte
	// The recvmsg arguments live with the Conn so a receive allocates
	// nothing.
	from unix.RawSockaddrNetlink
	iov  unix.Iovec
	hdr  unix.Msghdr
}

var _ Source = (*Conn)(nil)

// maxMessage is larger than any uevent: the kernel's environment buffer is
// UEVENT_BUFFER_SIZE (2048) plus the ACTION@DEVPATH header.
const maxMessage = 16 << 10

// maxDrain bounds the messages discarded after an overflow, so that a uevent
// storm cannot keep Receive draining forever.
const maxDrain = 1 << 16

// Listen opens the kernel's uevent socket: bound to group 1, the receive
// buffer raised (SO_RCVBUFFORCE, or SO_RCVBUF, capped by
// net.core.rmem_max, without CAP_NET_ADMIN), and SO_PASSCRED on so that
// messages not sent by the kernel can be dropped.
func Listen(opts ...Option) (*Conn, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("uevent listen: %w", os.NewSyscallError("socket", err))
	}
	rcvbuf, err := setup(fd, cfg)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("uevent listen: %w", err)
	}
	f := os.NewFile(uintptr(fd), "netlink-uevent")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("uevent listen: %w", err)
	}
	c := &Conn{
		f:      f,
		rc:     rc,
		stream: newStream(cfg.filter, cfg.log),
		rcvbuf: rcvbuf,
		buf:    make([]byte, maxMessage),
		oob:    make([]byte, unix.CmsgSpace(unix.SizeofUcred)),
	}
	c.iov.Base = &c.buf[0]
	c.iov.SetLen(len(c.buf))
	c.hdr.Name = (*byte)(unsafe.Pointer(&c.from))
	c.hdr.Namelen = unix.SizeofSockaddrNetlink
	c.hdr.Iov = &c.iov
	c.hdr.Iovlen = 1
	c.hdr.Control = &c.oob[0]
	cfg.log.Debug("uevent socket open", "receive_buffer", rcvbuf, "groups", cfg.groups)
	return c, nil
}

// setup sets the socket options and binds; it returns the receive buffer
// size the kernel granted.
func setup(fd int, cfg config) (int, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, cfg.rcvbuf); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, cfg.rcvbuf); err != nil {
			return 0, os.NewSyscallError("setsockopt SO_RCVBUF", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		return 0, os.NewSyscallError("setsockopt SO_PASSCRED", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cfg.groups}); err != nil {
		return 0, os.NewSyscallError("bind", err)
	}
	rcvbuf, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		return 0, os.NewSyscallError("getsockopt SO_RCVBUF", err)
	}
	return rcvbuf, nil
}

// ReceiveBufferSize is the receive buffer the kernel granted, in bytes (the
// kernel doubles the size asked for, for its bookkeeping).
func (c *Conn) ReceiveBufferSize() int { return c.rcvbuf }

// Stats returns the counts of messages received, dropped and delivered.
func (c *Conn) Stats() Stats { return c.stream.stats() }

// Receive returns the next kernel event that passes the filter. It returns
// an error wrapping ErrResync, once per loss, when the socket overflowed
// (unix.ENOBUFS is in the chain; the messages still queued, older than the
// loss, are discarded so the caller's rescan is the newest state) or when
// SEQNUM skipped; the caller rescans and calls Receive again. It returns
// promptly when ctx ends or the Conn is closed.
func (c *Conn) Receive(ctx context.Context) (Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Event{}, fmt.Errorf("uevent receive: %w", err)
	}
	// A ctx that ends moves the read deadline into the past, which wakes the
	// runtime poller; the deadline is cleared before Receive returns, so the
	// next Receive starts clean.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		_ = c.f.SetReadDeadline(time.Unix(1, 0))
	})
	defer func() {
		if !stop() {
			<-fired
			_ = c.f.SetReadDeadline(time.Time{})
		}
	}()
	for {
		n, from, err := c.recv(true)
		switch {
		case err == errTruncated:
			c.stream.dropTruncated()
			continue
		case errors.Is(err, unix.ENOBUFS):
			c.drain()
			return Event{}, c.stream.overflowed(os.NewSyscallError("recvmsg", err))
		case err != nil && c.closed.Load():
			return Event{}, fmt.Errorf("uevent receive: %w", os.ErrClosed)
		case err != nil && ctx.Err() != nil:
			return Event{}, fmt.Errorf("uevent receive: %w", ctx.Err())
		case err != nil:
			return Event{}, fmt.Errorf("uevent receive: %w", os.NewSyscallError("recvmsg", err))
		}
		ev, ok, err := c.stream.accept(c.buf[:n], from)
		if err != nil || ok {
			return ev, err
		}
	}
}

// drain discards the messages queued behind an overflow.
func (c *Conn) drain() {
	for range maxDrain {
		_, _, err := c.recv(false)
		if err != nil && err != errTruncated && !errors.Is(err, unix.ENOBUFS) {
			return
		}
	}
}

// errTruncated is a message or its credentials cut short by the buffers;
// the kernel never sends one that large, so it is dropped.
var errTruncated = errors.New("message truncated")

// recv reads one message; when wait is false it returns EAGAIN instead of
// waiting.
func (c *Conn) recv(wait bool) (int, Sender, error) {
	var n int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			c.hdr.Namelen = unix.SizeofSockaddrNetlink
			c.hdr.SetControllen(len(c.oob))
			c.hdr.Flags = 0
			r, _, errno := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.hdr)), 0)
			switch errno {
			case 0:
				n, rerr = int(r), nil
				return true
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				if wait {
					return false
				}
				rerr = errno
				return true
			default:
				rerr = errno
				return true
			}
		}
	})
	if err != nil {
		return 0, Sender{}, err
	}
	if rerr != nil {
		return 0, Sender{}, rerr
	}
	if c.hdr.Flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		return n, Sender{}, errTruncated
	}
	s := Sender{PortID: c.from.Pid}
	if cred, ok := parseCredentials(c.oob[:c.hdr.Controllen]); ok {
		s.HasCreds, s.UID = true, cred.Uid
	}
	return n, s, nil
}

// parseCredentials finds SCM_CREDENTIALS in a control buffer without
// allocating (unix.ParseSocketControlMessage allocates per message).
func parseCredentials(oob []byte) (unix.Ucred, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < unix.SizeofCmsghdr || uint64(h.Len) > uint64(len(oob)) {
			return unix.Ucred{}, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_CREDENTIALS &&
			uint64(h.Len) >= uint64(unix.CmsgLen(unix.SizeofUcred)) {
			return *(*unix.Ucred)(unsafe.Pointer(&oob[unix.CmsgLen(0)])), true
		}
		next := unix.CmsgSpace(int(h.Len) - unix.CmsgLen(0))
		if next > len(oob) {
			return unix.Ucred{}, false
		}
		oob = oob[next:]
	}
	return unix.Ucred{}, false
}

// Close closes the socket; a Receive in progress returns an error wrapping
// os.ErrClosed. Closing again does nothing.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.closeErr = c.f.Close()
	})
	return c.closeErr
}
