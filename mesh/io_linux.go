//go:build linux

package mesh

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// linuxBatch is how many datagrams one recvmmsg/sendmmsg moves. wireguard-go sizes its buffers
// by it (64 KiB each, per receive goroutine), so it is a memory/throughput trade-off; wireguard-go's
// own bind uses 128.
const linuxBatch = 32

// newPacketIO returns recvmmsg/sendmmsg-based I/O on Linux, or one-datagram I/O if the socket
// cannot be used that way.
func newPacketIO(c *net.UDPConn) packetIO {
	rc, err := c.SyscallConn()
	if err != nil {
		return &stdIO{c: c}
	}
	var family int
	ctrlErr := rc.Control(func(fd uintptr) {
		// As wireguard-go's bind does: large buffers, beyond rmem_max where we may.
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBufferSize)
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBufferSize)
		family, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	})
	if ctrlErr != nil || err != nil || (family != unix.AF_INET && family != unix.AF_INET6) {
		return &stdIO{c: c}
	}
	m := &mmsgIO{
		std: stdIO{c: c},
		rc:  rc,
		v6:  family == unix.AF_INET6,
	}
	m.r = newMmsgState(linuxBatch)
	m.wpool.New = func() any { return newMmsgState(linuxBatch) }
	return m
}

// mmsgIO moves up to linuxBatch datagrams per system call.
type mmsgIO struct {
	std   stdIO // for localAddr, interrupt, resume
	rc    syscall.RawConn
	v6    bool       // AF_INET6 socket (IPv4 destinations are sent v4-mapped)
	r     *mmsgState // read state: read has a single caller
	wpool sync.Pool  // *mmsgState for concurrent writers
}

type mmsgState struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for either family
}

func newMmsgState(n int) *mmsgState {
	s := &mmsgState{
		hdrs:  make([]unix.Mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n),
	}
	for i := range s.hdrs {
		s.hdrs[i].Hdr.Iov = &s.iovs[i]
		s.hdrs[i].Hdr.Iovlen = 1
		s.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&s.names[i]))
	}
	return s
}

func (m *mmsgIO) batchSize() int            { return linuxBatch }
func (m *mmsgIO) localAddr() netip.AddrPort { return m.std.localAddr() }
func (m *mmsgIO) interrupt() error          { return m.std.c.SetReadDeadline(time.Unix(1, 0)) }
func (m *mmsgIO) resume() error             { return m.std.c.SetReadDeadline(time.Time{}) }

func (m *mmsgIO) read(bufs [][]byte, sizes []int, srcs []netip.AddrPort) (int, error) {
	s := m.r
	n := min(len(bufs), len(s.hdrs))
	for i := 0; i < n; i++ {
		s.iovs[i].Base = unsafe.SliceData(bufs[i])
		s.iovs[i].SetLen(len(bufs[i]))
		s.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		s.hdrs[i].Hdr.Flags = 0
		s.hdrs[i].Len = 0
	}
	var got int
	var errno syscall.Errno
	err := m.rc.Read(func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(n), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		got, errno = int(r), e
		return true
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", errno)
	}
	for i := 0; i < got; i++ {
		sizes[i] = int(s.hdrs[i].Len)
		srcs[i] = parseSockaddr(&s.names[i])
	}
	return got, nil
}

func parseSockaddr(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return unmapAddrPort(netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port))
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	return netip.AddrPort{}
}

var errFamily = errors.New("mesh: IPv6 destination on an IPv4 socket")

func (m *mmsgIO) write(bufs [][]byte, dst netip.AddrPort) error {
	if len(bufs) == 1 {
		return m.std.write(bufs, dst) // one datagram: sendmsg is as good and simpler
	}
	s := m.wpool.Get().(*mmsgState)
	defer m.wpool.Put(s)

	// One destination for the whole batch: fill names[0] and point every header at it.
	var namelen uint32
	name := &s.names[0]
	*name = unix.RawSockaddrInet6{}
	if m.v6 {
		name.Family = unix.AF_INET6
		name.Addr = dst.Addr().As16()
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&name.Port))[:], dst.Port())
		namelen = unix.SizeofSockaddrInet6
	} else {
		if !dst.Addr().Is4() {
			return errFamily
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(name))
		sa4.Family = unix.AF_INET
		sa4.Addr = dst.Addr().As4()
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], dst.Port())
		namelen = unix.SizeofSockaddrInet4
	}
	for len(bufs) > 0 {
		n := 0
		for _, b := range bufs[:min(len(bufs), len(s.hdrs))] {
			if len(b) == 0 {
				break
			}
			s.iovs[n].Base = unsafe.SliceData(b)
			s.iovs[n].SetLen(len(b))
			s.hdrs[n].Hdr.Name = (*byte)(unsafe.Pointer(name))
			s.hdrs[n].Hdr.Namelen = namelen
			n++
		}
		if n == 0 { // an empty datagram: send it the simple way
			if err := m.std.write(bufs[:1], dst); err != nil {
				return err
			}
			bufs = bufs[1:]
			continue
		}
		var sent int
		var errno syscall.Errno
		err := m.rc.Write(func(fd uintptr) bool {
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(n), 0, 0, 0)
			if e == unix.EAGAIN || e == unix.EINTR {
				return false
			}
			sent, errno = int(r), e
			return true
		})
		// Restore the per-slot name pointers for the next user of this state.
		for i := 0; i < n; i++ {
			s.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&s.names[i]))
			s.iovs[i].Base = nil
		}
		if err != nil {
			return err
		}
		if errno != 0 {
			return os.NewSyscallError("sendmmsg", errno)
		}
		if sent <= 0 {
			sent = 1 // cannot happen for a blocking-style send; avoid spinning
		}
		bufs = bufs[sent:]
	}
	return nil
}
