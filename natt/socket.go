// socket.go holds the shared socket: a net.PacketConn over the data plane's UDP socket that
// keeps the STUN datagrams its owner hands over, routes Discover's responses, and writes through
// the owner; and the view of it that one consumer (the ICE mux) can close on its own.

package natt

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v4"
)

// DefaultSocketQueue is the number of datagrams a Socket holds for its reader before it drops.
const DefaultSocketQueue = 512

// maxDatagram is the largest datagram a Socket accepts from Deliver (the largest UDP payload).
const maxDatagram = 65535

// Socket is a net.PacketConn over a UDP socket that someone else owns: the data plane's
// WireGuard socket. Writes go to the write function given to NewSocket; reads return the
// datagrams handed to Deliver, which the owner of the real socket calls for every packet that is
// not WireGuard's.
//
// Only STUN messages are accepted (everything ICE and STUN need); other datagrams are counted and
// dropped. STUN responses to a Discover call in progress go straight to that call and are not
// queued, so Discover works whether or not an ICE Manager reads the Socket at the same time.
//
// The queue is bounded: when the reader falls behind, Deliver drops and counts. Close unblocks
// every reader. A Socket also implements the optional methods pion's UDP mux looks for
// (SetReadBuffer, SetWriteBuffer, ReadFromAddrPort, WriteToAddrPort).
type Socket struct {
	local netip.AddrPort
	write func([]byte, netip.AddrPort) error

	mu        sync.Mutex
	queue     []datagram // ring buffer
	head, n   int
	notify    chan struct{} // cap 1: "the queue may be non-empty"
	closed    chan struct{}
	closeOnce sync.Once     // closes closed
	rdl       time.Time     // read deadline
	rdlCh     chan struct{} // closed when the read deadline changes
	wdl       time.Time     // write deadline

	txMu sync.Mutex
	tx   map[[stun.TransactionIDSize]byte]chan<- datagram

	delivered, dropped, ignored, sent atomic.Uint64
}

type datagram struct {
	b    []byte
	from netip.AddrPort
}

// SocketStats counts what went through a Socket.
type SocketStats struct {
	Delivered uint64 // datagrams accepted by Deliver (queued or handed to a Discover call)
	Dropped   uint64 // STUN datagrams dropped because the queue was full or the Socket closed
	Ignored   uint64 // datagrams dropped because they were not STUN
	Sent      uint64 // datagrams written
}

// NewSocket returns a Socket whose local address is local (the real socket's address, which may
// be unspecified, e.g. 0.0.0.0:51820) and whose writes call write. write must be safe for
// concurrent use and should not block for long (a UDP send).
func NewSocket(local netip.AddrPort, write func(b []byte, to netip.AddrPort) error) *Socket {
	return &Socket{
		local:  local,
		write:  write,
		queue:  make([]datagram, DefaultSocketQueue),
		notify: make(chan struct{}, 1),
		closed: make(chan struct{}),
		rdlCh:  make(chan struct{}),
		tx:     make(map[[stun.TransactionIDSize]byte]chan<- datagram),
	}
}

// Deliver hands the Socket a datagram received on the real socket. It never blocks and does not
// keep b. It reports whether the datagram was accepted.
func (s *Socket) Deliver(b []byte, from netip.AddrPort) bool {
	from = canonical(from)
	if len(b) > maxDatagram || !from.IsValid() || !stun.IsMessage(b) {
		s.ignored.Add(1)
		return false
	}
	select {
	case <-s.closed:
		s.dropped.Add(1)
		return false
	default:
	}
	d := datagram{b: append([]byte(nil), b...), from: from}
	if s.deliverTransaction(d) {
		s.delivered.Add(1)
		return true
	}
	s.mu.Lock()
	if s.n == len(s.queue) {
		s.mu.Unlock()
		s.dropped.Add(1)
		return false
	}
	s.queue[(s.head+s.n)%len(s.queue)] = d
	s.n++
	s.mu.Unlock()
	s.delivered.Add(1)
	s.wake()
	return true
}

func (s *Socket) wake() { wake(s.notify) }

// deliverTransaction gives a STUN response to the Discover call waiting for it, if any.
func (s *Socket) deliverTransaction(d datagram) bool {
	b := d.b
	// Class bits of the message type: 0x0100 is success, 0x0110 error response.
	if len(b) < 20 || b[0]&0x01 == 0 {
		return false
	}
	var id [stun.TransactionIDSize]byte
	copy(id[:], b[8:20])
	s.txMu.Lock()
	ch, ok := s.tx[id]
	s.txMu.Unlock()
	if !ok {
		return false
	}
	select {
	case ch <- d:
	default: // the waiter already has a response queued; a duplicate is of no use
	}
	return true
}

// register routes responses carrying id to ch until the returned func is called.
func (s *Socket) register(id [stun.TransactionIDSize]byte, ch chan<- datagram) (unregister func()) {
	s.txMu.Lock()
	s.tx[id] = ch
	s.txMu.Unlock()
	return func() {
		s.txMu.Lock()
		delete(s.tx, id)
		s.txMu.Unlock()
	}
}

// Stats returns the Socket's counters.
func (s *Socket) Stats() SocketStats {
	return SocketStats{
		Delivered: s.delivered.Load(),
		Dropped:   s.dropped.Load(),
		Ignored:   s.ignored.Load(),
		Sent:      s.sent.Load(),
	}
}

// LocalAddrPort returns the local address given to NewSocket.
func (s *Socket) LocalAddrPort() netip.AddrPort { return s.local }

// LocalAddr implements net.PacketConn.
func (s *Socket) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(s.local) }

// ReadFrom implements net.PacketConn.
func (s *Socket) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := s.read(b, nil)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// ReadFromAddrPort is ReadFrom without allocating an address.
func (s *Socket) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return s.read(b, nil)
}

// read returns the next queued datagram. cancel, when not nil, ends the wait like Close does;
// it lets a view of the Socket (see sockView) be closed without closing the Socket.
func (s *Socket) read(b []byte, cancel <-chan struct{}) (int, netip.AddrPort, error) {
	for {
		s.mu.Lock()
		if s.n > 0 {
			d := s.queue[s.head]
			s.queue[s.head] = datagram{}
			s.head = (s.head + 1) % len(s.queue)
			s.n--
			more := s.n > 0
			s.mu.Unlock()
			if more {
				s.wake() // another reader may be waiting
			}
			return copy(b, d.b), d.from, nil
		}
		dl, dlCh := s.rdl, s.rdlCh
		s.mu.Unlock()

		select {
		case <-s.closed:
			return 0, netip.AddrPort{}, s.opErr("read", net.ErrClosed)
		case <-cancel:
			return 0, netip.AddrPort{}, s.opErr("read", net.ErrClosed)
		default:
		}
		if err := s.wait(dl, dlCh, cancel); err != nil {
			return 0, netip.AddrPort{}, s.opErr("read", err)
		}
	}
}

// wait blocks until the queue may have changed, the deadline changed or passed, or the Socket or
// cancel closed.
func (s *Socket) wait(dl time.Time, dlCh, cancel <-chan struct{}) error {
	var timeout <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-s.notify:
		return nil
	case <-dlCh:
		return nil
	case <-timeout:
		return os.ErrDeadlineExceeded
	case <-s.closed:
		return net.ErrClosed
	case <-cancel:
		return net.ErrClosed
	}
}

// WriteTo implements net.PacketConn.
func (s *Socket) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua == nil {
		return 0, s.opErr("write", fmt.Errorf("natt: not a UDP address: %T", addr))
	}
	return s.WriteToAddrPort(b, ua.AddrPort())
}

// WriteToAddrPort is WriteTo without an address allocation.
func (s *Socket) WriteToAddrPort(b []byte, to netip.AddrPort) (int, error) {
	select {
	case <-s.closed:
		return 0, s.opErr("write", net.ErrClosed)
	default:
	}
	s.mu.Lock()
	wdl := s.wdl
	s.mu.Unlock()
	if !wdl.IsZero() && !time.Now().Before(wdl) {
		return 0, s.opErr("write", os.ErrDeadlineExceeded)
	}
	to = canonical(to)
	if !to.IsValid() {
		return 0, s.opErr("write", fmt.Errorf("natt: invalid destination %v", to))
	}
	if err := s.write(b, to); err != nil {
		return 0, s.opErr("write", err)
	}
	s.sent.Add(1)
	return len(b), nil
}

// Close unblocks all readers; later reads and writes fail with net.ErrClosed, and so does a
// second Close.
func (s *Socket) Close() error { return closeOnce(&s.closeOnce, s.closed, "socket") }

// SetDeadline implements net.PacketConn.
func (s *Socket) SetDeadline(t time.Time) error {
	_ = s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// SetReadDeadline implements net.PacketConn.
func (s *Socket) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.rdl = t
	close(s.rdlCh)
	s.rdlCh = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// SetWriteDeadline implements net.PacketConn. Writes never block, so a deadline only makes writes
// fail once it has passed.
func (s *Socket) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.wdl = t
	s.mu.Unlock()
	return nil
}

// SetReadBuffer is a no-op: the real socket's buffers belong to its owner.
func (s *Socket) SetReadBuffer(int) error { return nil }

// SetWriteBuffer is a no-op: the real socket's buffers belong to its owner.
func (s *Socket) SetWriteBuffer(int) error { return nil }

func (s *Socket) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "udp", Addr: s.LocalAddr(), Err: err}
}

// sockView is a Socket as one consumer (the ICE mux) sees it: closing the view stops that
// consumer's reads without closing the shared Socket, which other users (Discover, Monitor) and a
// later Manager may still need.
type sockView struct {
	*Socket
	done chan struct{}
	once sync.Once
}

func newSockView(s *Socket) *sockView { return &sockView{Socket: s, done: make(chan struct{})} }

func (v *sockView) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := v.Socket.read(b, v.done)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

func (v *sockView) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return v.Socket.read(b, v.done)
}

func (v *sockView) WriteTo(b []byte, addr net.Addr) (int, error) {
	if v.isClosed() {
		return 0, v.opErr("write", net.ErrClosed)
	}
	return v.Socket.WriteTo(b, addr)
}

func (v *sockView) WriteToAddrPort(b []byte, to netip.AddrPort) (int, error) {
	if v.isClosed() {
		return 0, v.opErr("write", net.ErrClosed)
	}
	return v.Socket.WriteToAddrPort(b, to)
}

func (v *sockView) isClosed() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

// Close ends the view's reads and writes (not the Socket's); a second Close returns an error
// wrapping net.ErrClosed.
func (v *sockView) Close() error { return closeOnce(&v.once, v.done, "socket view") }

// canonical unmaps IPv4-mapped IPv6 addresses, so that one peer has one spelling.
func canonical(ap netip.AddrPort) netip.AddrPort {
	if !ap.IsValid() {
		return ap
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
