package mesh

import (
	"net"
	"net/netip"
	"time"
)

// packetIO is the Bind's access to the Mesh's UDP socket. read and write may move several
// datagrams per system call where the platform supports it (batchSize > 1).
type packetIO interface {
	// read receives at least one datagram into bufs, filling sizes and srcs (unmapped
	// addresses). It must only be called by one goroutine at a time.
	read(bufs [][]byte, sizes []int, srcs []netip.AddrPort) (int, error)
	// write sends every buffer to dst. Safe for concurrent use.
	write(bufs [][]byte, dst netip.AddrPort) error
	batchSize() int
	localAddr() netip.AddrPort
	// interrupt makes a blocked read return (with a deadline error); resume undoes it.
	interrupt() error
	resume() error
}

// ioOptions adjusts a packetIO; the zero value is the default. Tests and benchmarks use it to
// force the fallbacks.
type ioOptions struct {
	noGSO bool // never segment sends (UDP_SEGMENT), even where the kernel can
	noGRO bool // do not let the kernel coalesce received datagrams (UDP_GRO)
	batch int  // datagrams per recvmmsg/sendmmsg; 0 is the platform's default
}

// stdIO moves one datagram per system call; it works everywhere.
type stdIO struct {
	c *net.UDPConn
}

func (s *stdIO) read(bufs [][]byte, sizes []int, srcs []netip.AddrPort) (int, error) {
	n, src, err := s.c.ReadFromUDPAddrPort(bufs[0])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	srcs[0] = unmapAddrPort(src)
	return 1, nil
}

func (s *stdIO) write(bufs [][]byte, dst netip.AddrPort) error {
	for _, b := range bufs {
		if _, err := s.c.WriteToUDPAddrPort(b, dst); err != nil {
			return err
		}
	}
	return nil
}

func (s *stdIO) batchSize() int { return 1 }

func (s *stdIO) localAddr() netip.AddrPort { return localAddrPort(s.c) }

func (s *stdIO) interrupt() error { return s.c.SetReadDeadline(time.Unix(1, 0)) }

func (s *stdIO) resume() error { return s.c.SetReadDeadline(time.Time{}) }

func localAddrPort(c *net.UDPConn) netip.AddrPort {
	if ua, ok := c.LocalAddr().(*net.UDPAddr); ok {
		return unmapAddrPort(ua.AddrPort())
	}
	return netip.AddrPort{}
}
