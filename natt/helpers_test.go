// helpers_test.go holds the test parts that speak real UDP on 127.0.0.1: a STUN server and a
// node's socket (what mesh does for natt), and the STUN responder both they and the in-memory
// network (memnet_test.go) answer with.

package natt

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/stretchr/testify/require"
)

// testLogger logs to stderr when NATT_TEST_LOG is set, and discards otherwise.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("NATT_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// fixed is a STUN server mapping that reports public whoever asks: an endpoint-independent NAT
// when two servers report the same, a symmetric one when they differ.
func fixed(public string) func(netip.AddrPort) netip.AddrPort {
	ap := netip.MustParseAddrPort(public)
	return func(netip.AddrPort) netip.AddrPort { return ap }
}

// bindingResponse builds the success response to STUN Binding request req, reporting mapped.
// It reports false for anything that is not a Binding request.
func bindingResponse(req []byte, mapped netip.AddrPort) ([]byte, bool) {
	m := &stun.Message{Raw: append([]byte(nil), req...)}
	if m.Decode() != nil || m.Type != stun.BindingRequest {
		return nil, false
	}
	resp, err := stun.Build(m, stun.BindingSuccess,
		&stun.XORMappedAddress{IP: mapped.Addr().AsSlice(), Port: int(mapped.Port())},
		stun.Fingerprint)
	if err != nil {
		return nil, false
	}
	return resp.Raw, true
}

// stunResponder is how a test STUN server behaves: it reports the source address of a request
// or, with a mapping, what the mapping makes of it (to simulate a NAT); it may be silent; it
// remembers when requests came.
type stunResponder struct {
	mu       sync.Mutex
	mapping  func(netip.AddrPort) netip.AddrPort
	silent   bool
	requests []time.Time
}

func (r *stunResponder) setMapping(f func(netip.AddrPort) netip.AddrPort) {
	r.mu.Lock()
	r.mapping = f
	r.mu.Unlock()
}

func (r *stunResponder) setSilent(v bool) {
	r.mu.Lock()
	r.silent = v
	r.mu.Unlock()
}

// requestTimes returns when the Binding requests came, oldest first.
func (r *stunResponder) requestTimes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.requests...)
}

func (r *stunResponder) requestCount() int { return len(r.requestTimes()) }

// answer returns the response to datagram b from from, or false when there is none (not a
// Binding request, or the server is silent).
func (r *stunResponder) answer(b []byte, from netip.AddrPort) ([]byte, bool) {
	r.mu.Lock()
	mapped, silent := from, r.silent
	if r.mapping != nil {
		mapped = r.mapping(from)
	}
	r.mu.Unlock()
	resp, ok := bindingResponse(b, mapped)
	if !ok {
		return nil, false
	}
	r.mu.Lock()
	r.requests = append(r.requests, time.Now())
	r.mu.Unlock()
	return resp, !silent
}

// stunServer is a STUN server on 127.0.0.1 for tests.
type stunServer struct {
	*stunResponder
	conn *net.UDPConn
	addr netip.AddrPort
	wg   sync.WaitGroup
}

func newSTUNServer(t testing.TB) *stunServer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	s := &stunServer{stunResponder: &stunResponder{}, conn: conn, addr: conn.LocalAddr().(*net.UDPAddr).AddrPort()}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() {
		_ = conn.Close()
		s.wg.Wait()
	})
	return s
}

func (s *stunServer) serve() {
	defer s.wg.Done()
	readUDP(s.conn, func(b []byte, from netip.AddrPort) {
		if resp, ok := s.answer(b, from); ok {
			_, _ = s.conn.WriteToUDPAddrPort(resp, from)
		}
	})
}

// readUDP hands every datagram conn receives to f until conn is closed.
func readUDP(conn *net.UDPConn, f func(b []byte, from netip.AddrPort)) {
	buf := make([]byte, 65535)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		f(buf[:n], from)
	}
}

// testNode is what mesh does for natt: a real UDP socket whose non-WireGuard datagrams are fed
// to a Socket.
type testNode struct {
	conn *net.UDPConn
	addr netip.AddrPort
	sock *Socket
	wg   sync.WaitGroup
	// blocked drops everything sent from the socket: a network where direct paths do not
	// work (the TURN clients pion makes use sockets of their own).
	blocked atomic.Bool
}

func newTestNode(t testing.TB) *testNode {
	return newTestNodeAt(t, net.IPv4(127, 0, 0, 1))
}

// newTestNodeAt binds to ip (0.0.0.0 for an unspecified bind, as mesh does). addr is the address
// peers reach it at: 127.0.0.1 and the bound port.
func newTestNodeAt(t testing.TB, ip net.IP) *testNode {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
	require.NoError(t, err)
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	n := &testNode{conn: conn, addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), local.Port())}
	n.sock = NewSocket(local, func(b []byte, to netip.AddrPort) error {
		if n.blocked.Load() {
			return nil
		}
		_, err := conn.WriteToUDPAddrPort(b, to)
		return err
	})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		readUDP(conn, func(b []byte, from netip.AddrPort) { n.sock.Deliver(b, from) })
	}()
	t.Cleanup(n.close)
	return n
}

func (n *testNode) close() {
	_ = n.conn.Close()
	n.wg.Wait()
	_ = n.sock.Close()
}
