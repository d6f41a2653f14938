package mesh

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/internal/sockbuf"
	"github.com/nexodus-sdk/nexodus/key"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testTimeout = 20 * time.Second
	// pollEvery is how often the tests' require.Eventually checks its condition.
	pollEvery = 20 * time.Millisecond
)

var loopback = netip.MustParseAddr("127.0.0.1")

type testNode struct {
	m    *Mesh
	priv key.Key
	pub  key.Key
	v4   netip.Addr
	v6   netip.Addr
	cfg  Config
}

type nodeOpt func(*Config)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("MESH_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newKey returns a fresh private key.
func newKey(t testing.TB) key.Key {
	t.Helper()
	k, err := key.Generate()
	require.NoError(t, err)
	return k
}

// orderedKeys returns two private keys whose public keys sort as wanted: the first one smaller
// (its node is the preferred initiator) when firstSmaller.
func orderedKeys(t testing.TB, firstSmaller bool) (a, b key.Key) {
	t.Helper()
	for {
		a, b = newKey(t), newKey(t)
		pa, pb := a.Public(), b.Public()
		if (bytes.Compare(pa[:], pb[:]) < 0) == firstSmaller {
			return a, b
		}
	}
}

// newTestNode starts a mesh with tunnel addresses 100.64.0.i and fd00::i. The UDP socket is the
// default dual-stack one unless an option says otherwise.
func newTestNode(t testing.TB, i int, opts ...nodeOpt) *testNode {
	t.Helper()
	return startTestNode(t, i, newKey(t), opts...)
}

func startTestNode(t testing.TB, i int, priv key.Key, opts ...nodeOpt) *testNode {
	t.Helper()
	n := &testNode{
		priv: priv,
		pub:  priv.Public(),
		v4:   netip.AddrFrom4([4]byte{100, 64, 0, byte(i)}),
		v6:   netip.AddrFrom16([16]byte{0: 0xfd, 15: byte(i)}),
	}
	n.cfg = Config{
		PrivateKey: priv,
		Addresses:  []netip.Addr{n.v4, n.v6},
		Logger:     testLogger(t),
	}
	for _, o := range opts {
		o(&n.cfg)
	}
	m, err := New(context.Background(), n.cfg)
	require.NoError(t, err)
	n.m = m
	t.Cleanup(func() { m.Close() })
	return n
}

// endpoint is where other nodes of the test reach n: 127.0.0.1 and its socket's port.
func (n *testNode) endpoint() netip.AddrPort {
	return netip.AddrPortFrom(loopback, n.m.LocalAddr().Port())
}

func (n *testNode) asPeer() Peer {
	return Peer{
		PublicKey:  n.pub,
		AllowedIPs: []netip.Prefix{netip.PrefixFrom(n.v4, 32), netip.PrefixFrom(n.v6, 128)},
		Endpoints:  []netip.AddrPort{n.endpoint()},
	}
}

// listenEcho makes n serve a TCP echo on address (of network "tcp") until the test ends.
func (n *testNode) listenEcho(t testing.TB, address string) net.Listener {
	t.Helper()
	l, err := n.m.Listen("tcp", address)
	require.NoError(t, err)
	serveEcho(t, l)
	return l
}

// connectedPair starts two test nodes (1 and 2), each a peer of the other.
func connectedPair(t testing.TB) (a, b *testNode) {
	t.Helper()
	a, b = newTestNode(t, 1), newTestNode(t, 2)
	connectAll(t, a, b)
	return a, b
}

// dial connects n to a TCP address over the mesh, with testTimeout as the connection's
// deadline; the connection is closed when the test ends.
func (n *testNode) dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := n.m.DialContext(ctx, "tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout))
	return c
}

// connectAll makes every node a peer of every other.
func connectAll(t testing.TB, nodes ...*testNode) {
	t.Helper()
	for _, a := range nodes {
		var peers []Peer
		for _, b := range nodes {
			if a != b {
				peers = append(peers, b.asPeer())
			}
		}
		require.NoError(t, a.m.SetPeers(context.Background(), peers))
	}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// listenUDP returns a UDP socket on addr with the Mesh's socket buffers, closed when the test
// ends; the test is skipped where addr cannot be bound (no IPv6).
func listenUDP(t testing.TB, addr string) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Skipf("listen %s: %v", addr, err)
	}
	c := pc.(*net.UDPConn)
	sockbuf.Grow(c, socketBufferSize)
	t.Cleanup(func() { c.Close() })
	return c
}

// serveEcho accepts connections on l and echoes them until l is closed.
func serveEcho(t testing.TB, l net.Listener) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
}

// serveUDPEcho echoes datagrams on pc until it is closed.
func serveUDPEcho(t testing.TB, pc net.PacketConn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
}

// echo writes payload to c while it reads the echo back, and checks it.
func echo(c io.ReadWriter, payload []byte) error {
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		errc <- err
	}()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if !bytes.Equal(got, payload) {
		return errors.New("echo differs")
	}
	return nil
}

// echoRoundTrip dials addr from n, sends payload and checks the echo.
func echoRoundTrip(ctx context.Context, n *testNode, network, addr string, payload []byte) error {
	c, err := n.m.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("dial %s %s: %w", network, addr, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if err := echo(c, payload); err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	return nil
}

// udpPing sends msg to a UDP echo server at dst (nil: c's connected address) and waits a moment
// for it to come back. UDP may drop it (the handshake is not done yet): callers try again.
func udpPing(c net.PacketConn, dst net.Addr, msg []byte) error {
	var err error
	if dst == nil {
		_, err = c.(net.Conn).Write(msg)
	} else {
		_, err = c.WriteTo(msg, dst)
	}
	if err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 2048)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		return err
	}
	if !bytes.Equal(buf[:n], msg) || (dst != nil && from.String() != dst.String()) {
		return fmt.Errorf("unexpected reply %q from %v", buf[:n], from)
	}
	return nil
}

func tcpAddr(a netip.Addr, port int) string {
	return netip.AddrPortFrom(a, uint16(port)).String()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
