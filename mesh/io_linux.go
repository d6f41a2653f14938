//go:build linux

package mesh

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// linuxBatch is how many datagrams one recvmmsg/sendmmsg moves. wireguard-go sizes its buffers
// by it (64 KiB each, per receive goroutine), so it is a memory/throughput trade-off; wireguard-go's
// own bind uses 128. With GSO/GRO one message carries up to 64 datagrams anyway, and a batch of
// 128 measured no faster than 32 (BenchmarkPacketIO).
const linuxBatch = 32

// newPacketIO returns recvmmsg/sendmmsg-based I/O on Linux, with UDP GSO and GRO where the
// kernel has them, or one-datagram I/O if the socket cannot be used that way.
func newPacketIO(c *net.UDPConn) packetIO { return newPacketIOOptions(c, ioOptions{}) }

func newPacketIOOptions(c *net.UDPConn, opts ioOptions) packetIO {
	rc, err := c.SyscallConn()
	if err != nil {
		return &stdIO{c: c}
	}
	var family int
	var gso, gro bool
	ctrlErr := rc.Control(func(fd uintptr) {
		family, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err == nil && (family == unix.AF_INET || family == unix.AF_INET6) {
			gso, gro = probeOffload(int(fd), opts.noGSO, opts.noGRO)
		}
	})
	if ctrlErr != nil || err != nil || (family != unix.AF_INET && family != unix.AF_INET6) {
		return &stdIO{c: c}
	}
	batch := opts.batch
	if batch <= 0 {
		batch = linuxBatch
	}
	m := &mmsgIO{
		std:   stdIO{c: c},
		rc:    rc,
		v6:    family == unix.AF_INET6,
		batch: batch,
		gro:   gro,
	}
	m.gso.Store(gso)
	m.r = newReadState(batch, gro)
	m.wpool.New = func() any { return newWriteState(batch) }
	return m
}

// mmsgIO moves up to batch datagrams per system call, and with UDP GSO/GRO up to 64 datagrams
// per message of that call.
type mmsgIO struct {
	std   stdIO // for single datagrams, localAddr, interrupt, resume
	rc    syscall.RawConn
	v6    bool // AF_INET6 socket (IPv4 destinations are sent v4-mapped)
	batch int
	// gso: segment sends with UDP_SEGMENT. Probed at creation; cleared for good when a
	// segmented send fails with EIO (the device cannot checksum in hardware); a test may clear
	// it to force the fallback.
	gso atomic.Bool
	// gsoRetries counts segmented sends the kernel refused, which went out one by one.
	gsoRetries atomic.Uint64
	gro        bool       // UDP_GRO is on: a read may return coalesced datagrams, which it splits
	r          *readState // read has a single caller
	wpool      sync.Pool  // *writeState for concurrent writers
}

// mmsgCall is one recvmmsg or sendmmsg call on hdrs, made once (prepare) so that a read or write
// does not allocate: n is its argument (how many messages), done and errno its results.
type mmsgCall struct {
	hdrs  []unix.Mmsghdr
	n     int
	done  int
	errno syscall.Errno
	call  func(fd uintptr) bool // for syscall.RawConn's Read or Write
}

// prepare makes c.call; c must not move afterwards.
func (c *mmsgCall) prepare(trap, flags uintptr) {
	c.call = func(fd uintptr) bool {
		for {
			r, _, e := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&c.hdrs[0])), uintptr(c.n), flags, 0, 0)
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			}
			c.done, c.errno = int(r), e
			return true
		}
	}
}

// readState is the read side's recvmmsg arguments, allocated once.
type readState struct {
	mmsgCall
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for either family
	ctrl  []byte                  // groControlLen per message, with GRO
	gro   []int                   // GRO segment size of each received datagram (0: one datagram)
	stash groStash                // split datagrams that did not fit the caller's buffers
	// perMsg is the most datagrams one message of the last read held. A read asks for no more
	// messages than the caller's buffers can take at that rate: when every message is a
	// coalesced batch, one per call, instead of stashing (copying twice) all but the first.
	perMsg int
}

func newReadState(n int, gro bool) *readState {
	s := &readState{
		mmsgCall: mmsgCall{hdrs: make([]unix.Mmsghdr, n)},
		iovs:     make([]unix.Iovec, n),
		names:    make([]unix.RawSockaddrInet6, n),
		gro:      make([]int, n),
	}
	s.prepare(unix.SYS_RECVMMSG, unix.MSG_DONTWAIT)
	if gro {
		s.ctrl = make([]byte, n*groControlLen)
	}
	for i := range s.hdrs {
		h := &s.hdrs[i].Hdr
		h.Iov = &s.iovs[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&s.names[i]))
	}
	return s
}

// writeState is one writer's sendmmsg arguments.
type writeState struct {
	mmsgCall
	iovs []unix.Iovec // one per datagram; a segmented message has several
	ctrl []byte       // gsoControlLen per message
	cnt  []int        // datagrams per message
	name unix.RawSockaddrInet6
}

func newWriteState(n int) *writeState {
	s := &writeState{
		mmsgCall: mmsgCall{hdrs: make([]unix.Mmsghdr, n)},
		iovs:     make([]unix.Iovec, max(n, 2*udpMaxSegments)),
		ctrl:     make([]byte, n*gsoControlLen),
		cnt:      make([]int, n),
	}
	s.prepare(unix.SYS_SENDMMSG, 0)
	return s
}

func (m *mmsgIO) batchSize() int            { return m.batch }
func (m *mmsgIO) localAddr() netip.AddrPort { return m.std.localAddr() }
func (m *mmsgIO) interrupt() error          { return m.std.c.SetReadDeadline(time.Unix(1, 0)) }
func (m *mmsgIO) resume() error             { return m.std.c.SetReadDeadline(time.Time{}) }

func (m *mmsgIO) read(bufs [][]byte, sizes []int, srcs []netip.AddrPort) (int, error) {
	s := m.r
	if s.stash.pending() {
		return s.stash.drain(bufs, sizes, srcs), nil
	}
	n := min(len(bufs), len(sizes), len(srcs), len(s.hdrs))
	if n == 0 {
		return 0, nil
	}
	if s.perMsg > 1 {
		n = max(1, n/s.perMsg)
	}
	for i := 0; i < n; i++ {
		s.iovs[i].Base = unsafe.SliceData(bufs[i])
		s.iovs[i].SetLen(len(bufs[i]))
		h := &s.hdrs[i].Hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.Flags = 0
		if m.gro {
			h.Control = &s.ctrl[i*groControlLen]
			h.SetControllen(groControlLen)
		}
		s.hdrs[i].Len = 0
	}
	s.n = n
	err := m.rc.Read(s.call)
	clear(s.iovs[:n]) // do not keep the caller's buffers reachable
	if err != nil {
		return 0, err
	}
	if s.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", s.errno)
	}
	got := s.done
	coalesced := false
	perMsg := 1
	for i := 0; i < got; i++ {
		sizes[i] = int(s.hdrs[i].Len)
		srcs[i] = parseSockaddr(&s.names[i])
		if m.gro {
			off := i * groControlLen
			cl := min(int(s.hdrs[i].Hdr.Controllen), groControlLen)
			size, err := groSegmentSize(s.ctrl[off : off+cl])
			if err != nil {
				size = 0 // cannot happen with the kernel's messages; take it as one datagram
			}
			s.gro[i] = size
			if c := segments(sizes[i], size); c > 1 {
				coalesced = true
				perMsg = max(perMsg, c)
			}
		}
	}
	s.perMsg = perMsg
	if coalesced {
		return splitCoalesced(bufs, sizes, srcs, s.gro, got, &s.stash), nil
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

// setName fills the state's destination address for dst and returns its length and the largest
// UDP payload of a segmented send to it.
func (s *writeState) setName(dst netip.AddrPort, v6 bool) (namelen uint32, maxPayload int, err error) {
	name := &s.name
	*name = unix.RawSockaddrInet6{}
	maxPayload = maxUDPPayload4
	if v6 {
		name.Family = unix.AF_INET6
		name.Addr = dst.Addr().As16()
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&name.Port))[:], dst.Port())
		if !dst.Addr().Is4() && !dst.Addr().Is4In6() {
			maxPayload = maxUDPPayload6
		}
		return unix.SizeofSockaddrInet6, maxPayload, nil
	}
	if !dst.Addr().Is4() {
		return 0, 0, errFamily
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(name))
	sa4.Family = unix.AF_INET
	sa4.Addr = dst.Addr().As4()
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], dst.Port())
	return unix.SizeofSockaddrInet4, maxPayload, nil
}

// write sends bufs to dst with sendmmsg. With GSO, each run of equal-sized datagrams (the last
// may be shorter) goes as one message with a UDP_SEGMENT control message, its datagrams as that
// message's iovecs: nothing is copied. A segmented message the kernel refuses (see gsoRetryable)
// is sent again datagram by datagram.
func (m *mmsgIO) write(bufs [][]byte, dst netip.AddrPort) error {
	if len(bufs) == 1 {
		return m.std.write(bufs, dst) // one datagram: sendmsg is as good and simpler
	}
	s := m.wpool.Get().(*writeState)
	defer m.wpool.Put(s)
	namelen, maxPayload, err := s.setName(dst, m.v6)
	if err != nil {
		return err
	}
	gso := m.gso.Load()
	for len(bufs) > 0 {
		nh, ni := 0, 0
		for nh < len(s.hdrs) && ni < len(bufs) && ni < len(s.iovs) {
			c := 1
			if gso {
				c = gsoGroup(bufs[ni:], maxPayload, len(s.iovs)-ni)
			}
			for i, b := range bufs[ni : ni+c] {
				s.iovs[ni+i].Base = unsafe.SliceData(b)
				s.iovs[ni+i].SetLen(len(b))
			}
			h := &s.hdrs[nh].Hdr
			h.Iov = &s.iovs[ni]
			h.SetIovlen(c)
			h.Name = (*byte)(unsafe.Pointer(&s.name))
			h.Namelen = namelen
			if c > 1 {
				ctrl := s.ctrl[nh*gsoControlLen:]
				h.Control = &ctrl[0]
				h.SetControllen(putGSOControl(ctrl, uint16(len(bufs[ni]))))
			} else {
				h.Control = nil
				h.SetControllen(0)
			}
			s.cnt[nh] = c
			nh++
			ni += c
		}
		s.n = nh
		err := m.rc.Write(s.call)
		clear(s.iovs[:ni]) // do not keep the caller's buffers reachable
		if err != nil {
			return err
		}
		if s.errno != 0 {
			if s.cnt[0] > 1 {
				if retry, disable := gsoRetryable(s.errno); retry {
					m.gsoRetries.Add(1)
					if disable {
						m.gso.Store(false)
					}
					gso = false
					continue // the same datagrams again, one message each
				}
			}
			return os.NewSyscallError("sendmmsg", s.errno)
		}
		sent := max(s.done, 1) // 0 cannot happen for a blocking-style send; avoid spinning
		done := 0
		for _, c := range s.cnt[:min(sent, nh)] {
			done += c
		}
		bufs = bufs[done:]
	}
	return nil
}
