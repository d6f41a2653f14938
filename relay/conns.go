package relay

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/turn/v5"
	"golang.org/x/time/rate"

	"github.com/nexodus-sdk/nexodus/internal/sockbuf"
)

// listenConn is a UDP listener socket handed to pion. It counts reads in progress so that
// Close can wait for pion's read loop to leave.
type listenConn struct {
	net.PacketConn
	s *Server
}

func (c *listenConn) ReadFrom(p []byte) (int, net.Addr, error) {
	c.s.beginRead()
	defer c.s.endRead()
	return c.PacketConn.ReadFrom(p)
}

// trackedListener is a TCP listener handed to pion (directly, or under TLS). pion does not
// close the connections it accepted when the server closes, so the listener remembers them.
type trackedListener struct {
	net.Listener
	s *Server

	mu     sync.Mutex
	closed bool
	conns  map[*trackedConn]struct{}
}

func (l *trackedListener) Accept() (net.Conn, error) {
	l.s.beginRead()
	defer l.s.endRead()
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	l.conns[tc] = struct{}{}
	return tc, nil
}

func (l *trackedListener) closeConns() {
	l.mu.Lock()
	l.closed = true
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// trackedConn is an accepted connection; it counts reads in progress and leaves its
// listener's set when closed.
type trackedConn struct {
	net.Conn
	l *trackedListener
}

func (c *trackedConn) Read(p []byte) (int, error) {
	c.l.s.beginRead()
	defer c.l.s.endRead()
	return c.Conn.Read(p)
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// relayGenerator opens the relay socket of each allocation: bound to Config.RelayAddress,
// announced with Config.PublicIP, counted against the device's quota, policed and metered.
type relayGenerator struct{ s *Server }

func (g *relayGenerator) Validate() error { return nil }

func (g *relayGenerator) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	s := g.s
	want4 := c.Network != "udp6"
	if want4 != s.cfg.PublicIP.Is4() {
		return nil, nil, fmt.Errorf("%w: %s", ErrAddressFamily, c.Network)
	}
	if err := s.reserve(c.UserID); err != nil {
		return nil, nil, err
	}
	pc, err := g.listen(c)
	if err != nil {
		s.release(c.UserID)
		s.log.Warn("cannot open relay socket", "device_id", c.UserID, "err", err)
		return nil, nil, err
	}
	sockbuf.Grow(pc, 2<<20)
	rc := &relayConn{PacketConn: pc, s: s, userID: c.UserID}
	if lim := s.cfg.BandwidthLimit; lim > 0 {
		burst := int(min(max(lim, 64<<10), 1<<30))
		rc.in = rate.NewLimiter(rate.Limit(lim), burst)
		rc.out = rate.NewLimiter(rate.Limit(lim), burst)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	return rc, net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.cfg.PublicIP, uint16(port))), nil
}

func (g *relayGenerator) listen(c turn.AllocateListenerConfig) (net.PacketConn, error) {
	cfg := g.s.cfg
	ip := cfg.RelayAddress.String()
	if c.RequestedPort != 0 || cfg.MinRelayPort == 0 {
		return net.ListenPacket(c.Network, net.JoinHostPort(ip, strconv.Itoa(c.RequestedPort)))
	}
	span := int(cfg.MaxRelayPort) - int(cfg.MinRelayPort) + 1
	var err error
	for range min(span, 64) {
		port := int(cfg.MinRelayPort) + rand.IntN(span)
		var pc net.PacketConn
		if pc, err = net.ListenPacket(c.Network, net.JoinHostPort(ip, strconv.Itoa(port))); err == nil {
			return pc, nil
		}
	}
	return nil, fmt.Errorf("no free relay port in %d-%d: %w", cfg.MinRelayPort, cfg.MaxRelayPort, err)
}

func (g *relayGenerator) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, ErrUnsupportedTransport
}

func (g *relayGenerator) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, ErrUnsupportedTransport
}

// relayConn is an allocation's relay socket: what it reads came from a peer and goes to the
// client, what is written to it came from the client and goes to a peer.
type relayConn struct {
	net.PacketConn
	s       *Server
	userID  string
	in, out *rate.Limiter // nil without a bandwidth limit
	once    sync.Once
}

func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	c.s.beginRead()
	defer c.s.endRead()
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if c.in != nil && !c.in.AllowN(time.Now(), n) {
			c.s.dropped.Add(1)
			continue
		}
		c.s.bytes.Add(int64(n))
		c.s.packets.Add(1)
		return n, addr, nil
	}
}

// WriteTo runs on the read loop every client of the listener shares, so it never waits for
// the limiter: a datagram over the limit is dropped.
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.out != nil && !c.out.AllowN(time.Now(), len(p)) {
		c.s.dropped.Add(1)
		return len(p), nil
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	if n > 0 {
		c.s.bytes.Add(int64(n))
		c.s.packets.Add(1)
	}
	return n, err
}

func (c *relayConn) Close() error {
	err := c.PacketConn.Close()
	c.once.Do(func() { c.s.release(c.userID) })
	return err
}
