package mesh

import (
	"context"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTwoNodesTCP(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2, func(c *Config) {
		c.ListenAddr = netip.AddrPortFrom(loopback, 0) // one IPv4-only socket, one dual-stack
	})
	connectAll(t, a, b)
	for _, n := range []*testNode{a, b} {
		n.listenEcho(t, ":7000")
	}
	payload := randomBytes(t, 256<<10)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, tc := range []struct {
		name     string
		from, to *testNode
		network  string
		addr     netip.Addr
	}{
		{"a-b-v4", a, b, "tcp", b.v4},
		{"a-b-v6", a, b, "tcp6", b.v6},
		{"b-a-v4", b, a, "tcp4", a.v4},
		{"b-a-v6", b, a, "tcp", a.v6},
	} {
		require.NoError(t, echoRoundTrip(ctx, tc.from, tc.network, tcpAddr(tc.addr, 7000), payload), tc.name)
	}
	for _, n := range []*testNode{a, b} {
		ps := n.m.Peers()
		require.Len(t, ps, 1)
		assert.True(t, ps[0].Endpoint.IsValid(), "endpoint")
		assert.False(t, ps[0].LastHandshake.IsZero(), "last handshake")
		assert.NotZero(t, ps[0].RxBytes, "rx bytes")
		assert.NotZero(t, ps[0].TxBytes, "tx bytes")
	}
}

func TestThreeNodesTCPAndUDP(t *testing.T) {
	nodes := []*testNode{newTestNode(t, 1), newTestNode(t, 2), newTestNode(t, 3)}
	connectAll(t, nodes...)
	for _, n := range nodes {
		n.listenEcho(t, ":80")
		pc, err := n.m.ListenPacket("udp", ":53")
		require.NoError(t, err)
		serveUDPEcho(t, pc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	payload := randomBytes(t, 64<<10)
	for _, from := range nodes {
		for _, to := range nodes {
			if from == to {
				continue
			}
			for _, ip := range []netip.Addr{to.v4, to.v6} {
				require.NoError(t, echoRoundTrip(ctx, from, "tcp", tcpAddr(ip, 80), payload))
				require.NoError(t, udpRoundTrip(ctx, from, tcpAddr(ip, 53)))
			}
		}
	}
}

// udpRoundTrip sends datagrams to an echo server until one comes back intact (UDP may drop the
// first ones while the handshake completes).
func udpRoundTrip(ctx context.Context, n *testNode, addr string) error {
	c, err := n.m.DialContext(ctx, "udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := []byte("datagram to " + addr)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := udpPing(c.(net.PacketConn), nil, msg)
		if err == nil || !isTimeout(err) {
			return err
		}
	}
}

func TestListenPacketFromTo(t *testing.T) {
	a, b := connectedPair(t)
	srv, err := b.m.ListenPacket("udp6", ":9999")
	require.NoError(t, err)
	serveUDPEcho(t, srv)
	cl, err := a.m.ListenPacket("udp", ":0")
	require.NoError(t, err)
	defer cl.Close()
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(b.v6, 9999))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.NoError(c, udpPing(cl, dst, []byte("ping")))
	}, testTimeout, pollEvery)
}

func TestRemovePeer(t *testing.T) {
	a, b := connectedPair(t)
	b.listenEcho(t, ":80")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	require.NoError(t, echoRoundTrip(ctx, a, "tcp", tcpAddr(b.v4, 80), []byte("hello")))
	require.NoError(t, a.m.SetPeers(ctx, nil))
	require.Empty(t, a.m.Peers(), "peers after removal")
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	c, err := a.m.DialContext(short, "tcp", tcpAddr(b.v4, 80))
	if err == nil {
		c.Close()
	}
	require.Error(t, err, "dial to removed peer")
	require.True(t, isTimeout(err), "dial to removed peer: want timeout, got %v", err)
	// Adding it back restores connectivity.
	connectAll(t, a, b)
	require.NoError(t, echoRoundTrip(ctx, a, "tcp", tcpAddr(b.v4, 80), []byte("again")))
}

func TestSetPeersIdempotent(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	peers := []Peer{b.asPeer()}
	ctx := context.Background()
	require.NoError(t, a.m.SetPeers(ctx, peers))
	for range 3 {
		require.NoError(t, a.m.SetPeers(ctx, peers))
	}
	ps := a.m.Peers()
	require.Len(t, ps, 1)
	require.Equal(t, b.pub, ps[0].PublicKey)
	require.Error(t, a.m.SetPeers(ctx, []Peer{b.asPeer(), b.asPeer()}), "duplicate peers")
	require.Error(t, a.m.SetPeers(ctx, []Peer{a.asPeer()}), "own key as a peer")
}

func TestOnPacketAndWriteTo(t *testing.T) {
	got := make(chan string, 16)
	onPacket := func(b []byte, from netip.AddrPort) {
		select {
		case got <- string(b) + "|" + from.String():
		default:
		}
	}
	a := newTestNode(t, 1, func(c *Config) { c.OnPacket = onPacket })
	b := newTestNode(t, 2)
	connectAll(t, a, b)

	// Traffic between the nodes is WireGuard and must not reach OnPacket.
	a.listenEcho(t, ":80")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	require.NoError(t, echoRoundTrip(ctx, b, "tcp", tcpAddr(a.v4, 80), []byte("wg")))

	// A plain UDP socket talks to a's mesh socket.
	raw := listenUDP(t, "127.0.0.1:0")
	rawAddr := localAddrPort(raw)
	stunLike := "\x00\x01\x00\x00\x21\x12\xa4\x42 binding request"
	// A fake "WireGuard" message of the wrong size is not WireGuard either.
	short := "\x01\x00\x00\x00short"
	for _, msg := range []string{stunLike, short} {
		_, err := raw.WriteToUDPAddrPort([]byte(msg), a.endpoint())
		require.NoError(t, err)
	}
	for _, want := range []string{stunLike, short} {
		select {
		case g := <-got:
			require.Equal(t, want+"|"+rawAddr.String(), g, "OnPacket")
		case <-ctx.Done():
			t.Fatal("OnPacket not called")
		}
	}

	// WriteTo sends from the mesh socket.
	require.NoError(t, a.m.WriteTo([]byte("stun reply"), rawAddr))
	raw.SetReadDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, 100)
	n, from, err := raw.ReadFromUDPAddrPort(buf)
	require.NoError(t, err)
	require.Equal(t, "stun reply", string(buf[:n]))
	require.Equal(t, a.m.LocalAddr().Port(), from.Port())
	select {
	case g := <-got:
		t.Fatalf("unexpected OnPacket %q", g)
	default:
	}
}

func TestCloseIdempotent(t *testing.T) {
	a := newTestNode(t, 1)
	l, err := a.m.Listen("tcp", ":80")
	require.NoError(t, err)
	acceptErr := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		acceptErr <- err
	}()
	require.NoError(t, a.m.Close())
	require.Error(t, <-acceptErr, "accept after close")
	for range 2 {
		require.ErrorIs(t, a.m.Close(), net.ErrClosed, "second close")
	}
	_, err = a.m.DialContext(context.Background(), "tcp", "100.64.0.9:80")
	require.ErrorIs(t, err, net.ErrClosed, "dial after close")
	_, err = a.m.Listen("tcp", ":81")
	require.ErrorIs(t, err, net.ErrClosed, "listen after close")
	_, err = a.m.ListenPacket("udp", ":81")
	require.ErrorIs(t, err, net.ErrClosed, "listen packet after close")
	require.ErrorIs(t, a.m.SetPeers(context.Background(), nil), net.ErrClosed, "set peers after close")
	require.ErrorIs(t, a.m.WriteTo([]byte("x"), netip.MustParseAddrPort("127.0.0.1:9")), net.ErrClosed, "write after close")
	require.Nil(t, a.m.Peers(), "peers after close")
}

// TestTunnelCloseIdempotent closes the netstack tunnel (which wireguard-go closes once, with
// the device) twice.
func TestTunnelCloseIdempotent(t *testing.T) {
	tn, err := newNetTUN([]netip.Addr{netip.MustParseAddr("100.64.0.1")}, DefaultMTU, nil, nil)
	require.NoError(t, err)
	require.NoError(t, tn.Close())
	for range 2 {
		require.ErrorIs(t, tn.Close(), net.ErrClosed)
	}
	for range tn.Events() { // ends: Close closed the channel
	}
}

// TestOpenCloseLoop opens and closes meshes (with a peer and a connection) many times and checks
// that goroutines do not accumulate.
func TestOpenCloseLoop(t *testing.T) {
	iterations := 50
	if testing.Short() {
		iterations = 10
	}
	peer := newTestNode(t, 1)
	l, err := peer.m.Listen("tcp", ":80")
	require.NoError(t, err)
	// An echo server whose connections end on their own: a client mesh closed right after its
	// connection may never deliver the FIN, and the server side would wait forever (a test
	// artifact that would look like a goroutine leak).
	var serverWG sync.WaitGroup
	serverWG.Add(1)
	go func() {
		defer serverWG.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			serverWG.Add(1)
			go func() {
				defer serverWG.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(2 * time.Second))
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		serverWG.Wait()
	})
	cycle := func(i int) {
		n := newTestNode(t, 2)
		connectAll(t, peer, n)
		if i%5 == 0 { // exercise a real connection now and then
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			require.NoError(t, echoRoundTrip(ctx, n, "tcp", tcpAddr(peer.v4, 80), []byte("x")))
		}
		require.NoError(t, n.m.Close())
	}
	cycle(1) // warm up pools and lazily started runtime goroutines
	base := runtime.NumGoroutine()
	for i := range iterations {
		cycle(i)
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.LessOrEqual(c, runtime.NumGoroutine(), base+2, "goroutines grew from %d", base)
	}, 10*time.Second, pollEvery)
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	priv := newKey(t)
	for _, cfg := range []Config{
		{Addresses: []netip.Addr{netip.MustParseAddr("100.64.0.1")}},
		{PrivateKey: priv},
		{PrivateKey: priv, Addresses: []netip.Addr{netip.MustParseAddr("100.64.0.1")}, MTU: 100},
	} {
		m, err := New(ctx, cfg)
		if err == nil {
			m.Close()
		}
		require.Error(t, err, "config %+v", cfg)
	}
	a := newTestNode(t, 1)
	for _, tc := range []struct{ network, addr string }{
		{"tcp", "example.com:80"},
		{"tcp4", "[fd00::2]:80"},
		{"sctp", "100.64.0.2:80"},
		{"tcp", "100.64.0.2"},
		{"tcp", ":80"},
	} {
		c, err := a.m.DialContext(ctx, tc.network, tc.addr)
		if err == nil {
			c.Close()
		}
		require.Error(t, err, "dial %s %s", tc.network, tc.addr)
	}
	_, err := a.m.Listen("udp", ":80")
	require.Error(t, err, "Listen udp")
	_, err = a.m.ListenPacket("tcp", ":80")
	require.Error(t, err, "ListenPacket tcp")
}
