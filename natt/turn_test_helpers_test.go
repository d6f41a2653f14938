// turn_test_helpers_test.go holds a real TURN server (pion/turn) on 127.0.0.1 for the relay tests.

package natt

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"github.com/stretchr/testify/require"
)

const (
	turnRealm = "nexodus-test"
	turnUser  = "alice"
	turnPass  = "secret"
)

// turnServer is a TURN server (pion/turn) on 127.0.0.1, UDP and TCP on one port number, with
// static credentials. It can be stopped and started again on the same ports.
type turnServer struct {
	t    testing.TB
	port uint16

	mu       sync.Mutex
	srv      *turn.Server
	allocs   atomic.Int64 // successful authentications of Allocate requests
	tcpConns atomic.Int64 // TCP connections accepted
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func newTURNServer(t testing.TB) *turnServer {
	t.Helper()
	ts := &turnServer{t: t}
	// Find a port free for both UDP and TCP.
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			pc.Close()
			continue
		}
		ts.port = uint16(port)
		require.NoError(t, ts.startOn(pc, l))
		t.Cleanup(ts.stop)
		return ts
	}
	require.FailNow(t, "no port free for both UDP and TCP")
	return nil
}

func (ts *turnServer) addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ts.port)
}

// servers returns the TURN configuration for transport "udp" or "tcp".
func (ts *turnServer) servers(transport string) []TURNServer {
	return []TURNServer{{
		URL:      fmt.Sprintf("turn:%s?transport=%s", ts.addr(), transport),
		Username: turnUser,
		Password: turnPass,
	}}
}

func (ts *turnServer) startOn(pc net.PacketConn, l net.Listener) error {
	gen := func() turn.RelayAddressGenerator {
		return &turn.RelayAddressGeneratorStatic{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"}
	}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm: turnRealm,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			if ra.Username != turnUser {
				return "", nil, false
			}
			if ra.Method == stun.MethodAllocate {
				ts.allocs.Add(1)
			}
			return ra.Username, turn.GenerateAuthKey(ra.Username, ra.Realm, turnPass), true
		},
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: pc, RelayAddressGenerator: gen()}},
		ListenerConfigs:   []turn.ListenerConfig{{Listener: countingListener{l, &ts.tcpConns}, RelayAddressGenerator: gen()}},
	})
	if err != nil {
		pc.Close()
		l.Close()
		return err
	}
	ts.mu.Lock()
	ts.srv = srv
	ts.mu.Unlock()
	return nil
}

// stop closes the server and every allocation (a relay that died).
func (ts *turnServer) stop() {
	ts.mu.Lock()
	srv := ts.srv
	ts.srv = nil
	ts.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// restart starts the server again on the same port.
func (ts *turnServer) restart() {
	ts.t.Helper()
	addr := ts.addr().String()
	pc, err := net.ListenPacket("udp4", addr)
	require.NoError(ts.t, err, "restart TURN")
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		pc.Close()
	}
	require.NoError(ts.t, err, "restart TURN")
	require.NoError(ts.t, ts.startOn(pc, l))
}

// active returns the number of allocations the server holds now.
func (ts *turnServer) active() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.srv == nil {
		return 0
	}
	return ts.srv.AllocationCount()
}
