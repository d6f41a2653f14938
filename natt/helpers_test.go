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
)

// testLogger logs to stderr when NATT_TEST_LOG is set, and discards otherwise.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("NATT_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// stunServer is a STUN binding responder on 127.0.0.1 for tests. map_, when set, rewrites the
// address it reports (to simulate a NAT).
type stunServer struct {
	conn *net.UDPConn
	addr netip.AddrPort
	wg   sync.WaitGroup

	mu       sync.Mutex
	map_     func(netip.AddrPort) netip.AddrPort
	silent   bool
	requests int
}

func newSTUNServer(t testing.TB) *stunServer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &stunServer{conn: conn, addr: conn.LocalAddr().(*net.UDPAddr).AddrPort()}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() {
		_ = conn.Close()
		s.wg.Wait()
	})
	return s
}

func (s *stunServer) setMapping(f func(netip.AddrPort) netip.AddrPort) {
	s.mu.Lock()
	s.map_ = f
	s.mu.Unlock()
}

func (s *stunServer) setSilent(v bool) {
	s.mu.Lock()
	s.silent = v
	s.mu.Unlock()
}

func (s *stunServer) requestCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func (s *stunServer) serve() {
	defer s.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if m.Decode() != nil || m.Type != stun.BindingRequest {
			continue
		}
		s.mu.Lock()
		s.requests++
		mapped, silent := from, s.silent
		if s.map_ != nil {
			mapped = s.map_(from)
		}
		s.mu.Unlock()
		if silent {
			continue
		}
		resp, err := stun.Build(m, stun.BindingSuccess,
			&stun.XORMappedAddress{IP: mapped.Addr().AsSlice(), Port: int(mapped.Port())},
			stun.Fingerprint)
		if err != nil {
			continue
		}
		_, _ = s.conn.WriteToUDPAddrPort(resp.Raw, from)
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
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
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
		buf := make([]byte, 65535)
		for {
			k, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			n.sock.Deliver(buf[:k], from)
		}
	}()
	t.Cleanup(n.close)
	return n
}

func (n *testNode) close() {
	_ = n.conn.Close()
	n.wg.Wait()
	_ = n.sock.Close()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
