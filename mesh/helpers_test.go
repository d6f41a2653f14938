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

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var loopback = netip.MustParseAddr("127.0.0.1")

type testNode struct {
	m    *Mesh
	priv [32]byte
	pub  [32]byte
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

// newTestNode starts a mesh with tunnel addresses 100.64.0.i and fd00::i. The UDP socket is the
// default dual-stack one unless an option says otherwise.
func newTestNode(t testing.TB, i int, opts ...nodeOpt) *testNode {
	t.Helper()
	priv, err := GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return startTestNode(t, i, priv, opts...)
}

func startTestNode(t testing.TB, i int, priv [32]byte, opts ...nodeOpt) *testNode {
	t.Helper()
	n := &testNode{
		priv: priv,
		pub:  PublicKey(priv),
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
	if err != nil {
		t.Fatal(err)
	}
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
		if err := a.m.SetPeers(context.Background(), peers); err != nil {
			t.Fatal(err)
		}
	}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
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
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		errc <- err
	}()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read echo from %s: %w", addr, err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("write to %s: %w", addr, err)
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("echo from %s: bytes differ", addr)
	}
	return nil
}

// eventually polls f until it returns nil or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tcpAddr(a netip.Addr, port int) string {
	return netip.AddrPortFrom(a, uint16(port)).String()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
