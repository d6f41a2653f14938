package relay

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nexodus-sdk/nexodus/internal/turncred"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var testSecret = []byte("relay-test-secret-0123456789")

func testLogger() *slog.Logger {
	if os.Getenv("RELAY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startRelay runs a relay on 127.0.0.1 with two UDP ports and one TCP port.
func startRelay(t *testing.T, mod ...func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		Secret:    testSecret,
		PublicIP:  netip.MustParseAddr("127.0.0.1"),
		UDPListen: []string{"127.0.0.1:0", "127.0.0.1:0"},
		TCPListen: []string{"127.0.0.1:0"},
		Logger:    testLogger(),
	}
	for _, f := range mod {
		f(&cfg)
	}
	s, err := New(t.Context(), cfg)
	require.NoError(t, err, "New")
	t.Cleanup(func() {
		assert.NoError(t, s.Close(), "Close")
	})
	return s
}

func mint(device string, ttl time.Duration) (string, string) {
	return turncred.Mint(testSecret, device, time.Now().Add(ttl))
}

// deviceClient connects a TURN client of device over transport ("udp" or "tcp") to server,
// with credentials valid for an hour, and allocates.
func deviceClient(t *testing.T, transport, server, device string) *turnClient {
	t.Helper()
	u, p := mint(device, time.Hour)
	c := newTurnClient(t, transport, server, u, p, nil)
	c.mustAllocate()
	return c
}

// turnClient is a pion TURN client with its allocation.
type turnClient struct {
	t      *testing.T
	conn   net.PacketConn
	client *turn.Client
	relay  net.PacketConn // nil until allocate succeeds
}

func quietPion() logging.LoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.DefaultLogLevel = logging.LogLevelDisabled
	return f
}

// newTurnClient connects a TURN client over "udp", "tcp" or "tls" to server (host:port).
func newTurnClient(t *testing.T, transport, server, user, pass string, tlsCfg *tls.Config) *turnClient {
	t.Helper()
	var conn net.PacketConn
	switch transport {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
		conn = c
	case "tcp":
		c, err := net.Dial("tcp", server)
		require.NoError(t, err)
		conn = turn.NewSTUNConn(c)
	case "tls":
		c, err := tls.Dial("tcp", server, tlsCfg)
		require.NoError(t, err)
		conn = turn.NewSTUNConn(c)
	default:
		require.FailNow(t, "unknown transport", transport)
	}
	cl, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server,
		TURNServerAddr: server,
		Username:       user,
		Password:       pass,
		Conn:           conn,
		RTO:            100 * time.Millisecond,
		LoggerFactory:  quietPion(),
	})
	if err != nil {
		_ = conn.Close()
		require.NoError(t, err)
	}
	tc := &turnClient{t: t, conn: conn, client: cl}
	t.Cleanup(tc.close)
	require.NoError(t, cl.Listen())
	return tc
}

func (c *turnClient) allocate() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.client.AllocateWithContext(ctx)
	if err != nil {
		return err
	}
	c.relay = r
	return nil
}

func (c *turnClient) mustAllocate() net.Addr {
	c.t.Helper()
	require.NoError(c.t, c.allocate(), "allocate")
	return c.relay.LocalAddr()
}

func (c *turnClient) close() {
	if c.relay != nil {
		_ = c.relay.Close() // deallocates (a refresh with lifetime 0) while the client listens
		c.relay = nil
	}
	c.client.Close()
	_ = c.conn.Close()
}

// readFrom reads one datagram with a deadline.
func readFrom(t *testing.T, pc net.PacketConn) ([]byte, net.Addr) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := pc.ReadFrom(buf)
	require.NoError(t, err, "read from relay")
	return buf[:n], from
}

func TestSTUNBindingEveryListener(t *testing.T) {
	s := startRelay(t)
	a := s.Addrs()
	require.Len(t, a.UDP, 2)
	require.Len(t, a.TCP, 1)
	require.NotZero(t, a.UDP[0].Port())
	require.NotEqual(t, a.UDP[0].Port(), a.UDP[1].Port())
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	local := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, srv := range a.UDP {
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
		_, err := pc.WriteTo(req.Raw, net.UDPAddrFromAddrPort(srv))
		require.NoError(t, err)
		b, _ := readFrom(t, pc)
		assert.Equal(t, local, mappedAddr(t, b, req.TransactionID), "mapped address on UDP %s", srv)
	}
	for _, srv := range a.TCP {
		c, err := net.Dial("tcp", srv.String())
		require.NoError(t, err)
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
		_, err = c.Write(req.Raw)
		require.NoError(t, err)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		hdr := make([]byte, 20)
		_, err = io.ReadFull(c, hdr)
		require.NoError(t, err)
		body := make([]byte, int(hdr[2])<<8|int(hdr[3]))
		_, err = io.ReadFull(c, body)
		require.NoError(t, err)
		want := c.LocalAddr().(*net.TCPAddr).AddrPort()
		assert.Equal(t, want, mappedAddr(t, append(hdr, body...), req.TransactionID), "mapped address on TCP %s", srv)
		c.Close()
	}
}

func mappedAddr(t *testing.T, raw []byte, tid [stun.TransactionIDSize]byte) netip.AddrPort {
	t.Helper()
	m := &stun.Message{Raw: raw}
	require.NoError(t, m.Decode(), "decode STUN response")
	require.Equal(t, stun.BindingSuccess, m.Type)
	require.Equal(t, tid, m.TransactionID, "the answer is to another transaction")
	var xa stun.XORMappedAddress
	require.NoError(t, xa.GetFrom(m), "XOR-MAPPED-ADDRESS")
	ip, _ := netip.AddrFromSlice(xa.IP)
	return netip.AddrPortFrom(ip.Unmap(), uint16(xa.Port))
}

// exchange relays datagrams both ways between two allocations and checks them byte for byte.
func exchange(t *testing.T, a, b *turnClient) {
	t.Helper()
	ra, rb := a.relay.LocalAddr(), b.relay.LocalAddr()
	require.NoError(t, a.client.CreatePermission(rb), "CreatePermission")
	require.NoError(t, b.client.CreatePermission(ra), "CreatePermission")
	for i := range 5 {
		// WireGuard-like payload: type byte, then opaque bytes, including every byte value.
		msg := make([]byte, 148+i*300)
		msg[0] = 4
		for j := 1; j < len(msg); j++ {
			msg[j] = byte(j * (i + 7))
		}
		_, err := a.relay.WriteTo(msg, rb)
		require.NoError(t, err)
		got, from := readFrom(t, b.relay)
		require.Equal(t, msg, got, "what b got")
		require.Equal(t, ra.String(), from.String(), "whom b got it from")
		reply := append([]byte{4}, bytes.Repeat([]byte{byte(i), 0xff, 0}, 100+i)...)
		_, err = b.relay.WriteTo(reply, ra)
		require.NoError(t, err)
		got, from = readFrom(t, a.relay)
		require.Equal(t, reply, got, "what a got")
		require.Equal(t, rb.String(), from.String(), "whom a got it from")
	}
}

func TestRelayUDP(t *testing.T) {
	s := startRelay(t)
	srv := s.Addrs().UDP[0].String()
	a := deviceClient(t, "udp", srv, "device-a")
	b := deviceClient(t, "udp", s.Addrs().UDP[1].String(), "device-b")
	ra, rb := a.relay.LocalAddr(), b.relay.LocalAddr()
	for _, r := range []net.Addr{ra, rb} {
		assert.Equal(t, "127.0.0.1", r.(*net.UDPAddr).IP.String(), "the relayed address is on the public IP")
	}
	st := s.Stats()
	assert.EqualValues(t, 2, st.Allocations)
	assert.EqualValues(t, 2, st.AllocationsTotal)
	exchange(t, a, b)
	// Each datagram crosses two relay sockets (one out, one in): 10 datagrams, 20 socket passes.
	// The sender's count may land just after the receiver got the datagram.
	require.Eventually(t, func() bool {
		st := s.Stats()
		return st.PacketsRelayed >= 20 && st.BytesRelayed >= 2*(5*148+5*300)
	}, 10*time.Second, 5*time.Millisecond, "relayed traffic to be counted")
	a.close()
	b.close()
	require.Eventually(t, func() bool { return s.Stats().Allocations == 0 }, 10*time.Second, 5*time.Millisecond, "allocations released")
	st = s.Stats()
	assert.EqualValues(t, 2, st.AllocationsTotal)
	assert.Zero(t, st.AuthFailures)
}

func TestRelayTCPAndTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	s := startRelay(t, func(c *Config) {
		c.TLSListen = "127.0.0.1:0"
		c.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	})
	addrs := s.Addrs()
	require.True(t, addrs.TLS.IsValid(), "TLS address")
	require.NotZero(t, addrs.TLS.Port(), "TLS port")
	ub, pb := mint("device-tls", time.Hour)
	a := deviceClient(t, "tcp", addrs.TCP[0].String(), "device-tcp")
	b := newTurnClient(t, "tls", addrs.TLS.String(), ub, pb,
		&tls.Config{RootCAs: pool, ServerName: "relay.test", MinVersion: tls.VersionTLS12})
	b.mustAllocate()
	c := deviceClient(t, "udp", addrs.UDP[0].String(), "device-udp")
	exchange(t, a, b) // TCP client <-> TLS client
	exchange(t, a, c) // TCP client <-> UDP client
	assert.EqualValues(t, 3, s.Stats().Allocations)
	// Closing the TCP connection ends its allocation.
	a.close()
	require.Eventually(t, func() bool { return s.Stats().Allocations == 2 }, 10*time.Second, 5*time.Millisecond, "the TCP client's allocation to end")
}

func TestRefused(t *testing.T) {
	s := startRelay(t, func(c *Config) { c.Realm = "nexodus-test" })
	srv := s.Addrs().UDP[0].String()
	goodUser, goodPass := mint("device-a", time.Hour)
	expUser, expPass := mint("device-a", -time.Minute)
	forged := []byte(goodPass)
	forged[3] ^= 0x10
	otherUser, otherPass := turncred.Mint([]byte("another secret"), "device-a", time.Now().Add(time.Hour))

	cases := []struct {
		name, user, pass string
	}{
		{"expired", expUser, expPass},
		{"forged password", goodUser, string(forged)},
		{"other secret", otherUser, otherPass},
		{"malformed username", "device-a", goodPass},
		{"longer expiry than minted", fmt.Sprint(time.Now().Add(48*time.Hour).Unix()) + ":device-a", goodPass},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Stats().AuthFailures
			c := newTurnClient(t, "udp", srv, tc.user, tc.pass, nil)
			require.Error(t, c.allocate(), "allocation succeeded")
			st := s.Stats()
			assert.Greater(t, st.AuthFailures, before, "auth failures")
			assert.Zero(t, st.Allocations)
			// The same refusal, seen on the wire: 400 to a complete, signed request.
			assert.Equal(t, stun.CodeBadRequest, rawAllocate(t, srv, tc.user, tc.pass, "nexodus-test"), "raw allocate")
		})
	}
	t.Run("wrong realm", func(t *testing.T) {
		before := s.Stats().AuthFailures
		assert.Equal(t, stun.CodeBadRequest, rawAllocate(t, srv, goodUser, goodPass, "other-realm"), "raw allocate")
		assert.Greater(t, s.Stats().AuthFailures, before, "auth failure not counted")
	})
	t.Run("control: good credentials", func(t *testing.T) {
		require.Zero(t, rawAllocate(t, srv, goodUser, goodPass, "nexodus-test"), "raw allocate with good credentials")
		c := newTurnClient(t, "udp", srv, goodUser, goodPass, nil)
		c.mustAllocate()
	})
}

// rawAllocate performs the two-step authenticated Allocate by hand, so the request can name any
// realm, and returns the error code of the final answer (0 for success). A successful
// allocation is released again.
func rawAllocate(t *testing.T, server, user, pass, realm string) stun.ErrorCode {
	t.Helper()
	return rawAllocateFrom(t, "127.0.0.1", server, user, pass, realm)
}

// rawAllocateFrom is rawAllocate from a socket on the local address from (any of 127.0.0.0/8
// on Linux), so that tests can play several sources.
func rawAllocateFrom(t *testing.T, from, server, user, pass, realm string) stun.ErrorCode {
	t.Helper()
	pc, err := net.ListenPacket("udp4", net.JoinHostPort(from, "0"))
	require.NoError(t, err)
	defer pc.Close()
	to, err := net.ResolveUDPAddr("udp", server)
	require.NoError(t, err)
	udp := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	roundTrip := func(setters ...stun.Setter) *stun.Message {
		t.Helper()
		req := stun.MustBuild(setters...)
		_, err := pc.WriteTo(req.Raw, to)
		require.NoError(t, err)
		b, _ := readFrom(t, pc)
		m := &stun.Message{Raw: b}
		require.NoError(t, m.Decode())
		require.Equal(t, req.TransactionID, m.TransactionID, "answer to another transaction")
		return m
	}
	allocate := stun.NewType(stun.MethodAllocate, stun.ClassRequest)
	m := roundTrip(stun.TransactionID, allocate, udp, stun.Fingerprint)
	var nonce stun.Nonce
	var code stun.ErrorCodeAttribute
	require.NoError(t, code.GetFrom(m), "first answer")
	require.Equal(t, stun.CodeUnauthorized, code.Code, "first answer")
	require.NoError(t, nonce.GetFrom(m))
	m = roundTrip(stun.TransactionID, allocate, udp, stun.NewUsername(user), stun.NewRealm(realm), nonce,
		stun.NewLongTermIntegrity(user, realm, pass), stun.Fingerprint)
	if m.Type.Class == stun.ClassSuccessResponse {
		// Release it: Refresh with lifetime 0.
		lifetime0 := stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}
		roundTrip(stun.TransactionID, stun.NewType(stun.MethodRefresh, stun.ClassRequest), lifetime0,
			stun.NewUsername(user), stun.NewRealm(realm), nonce, stun.NewLongTermIntegrity(user, realm, pass), stun.Fingerprint)
		return 0
	}
	require.NoError(t, code.GetFrom(m), "error answer without a code")
	return code.Code
}

func TestQuota(t *testing.T) {
	s := startRelay(t, func(c *Config) { c.QuotaPerUser = 2 })
	srv := s.Addrs().UDP[0].String()
	var held []*turnClient
	for i := range 2 {
		u, p := mint("device-q", time.Hour+time.Duration(i)*time.Second) // fresh credentials, same device
		c := newTurnClient(t, "udp", srv, u, p, nil)
		c.mustAllocate()
		held = append(held, c)
	}
	u, p := mint("device-q", 2*time.Hour)
	over := newTurnClient(t, "udp", srv, u, p, nil)
	require.ErrorContains(t, over.allocate(), "486", "third allocation")
	st := s.Stats()
	assert.EqualValues(t, 1, st.QuotaRejections)
	assert.EqualValues(t, 2, st.Allocations)
	// Another device is not affected.
	deviceClient(t, "udp", srv, "device-other")
	// Releasing one allocation makes room again.
	held[0].close()
	require.Eventually(t, func() bool { return s.Stats().Allocations == 2 }, 10*time.Second, 5*time.Millisecond, "the released allocation to leave the quota")
	u, p = mint("device-q", 3*time.Hour)
	newTurnClient(t, "udp", srv, u, p, nil).mustAllocate()
}

func TestBandwidthLimit(t *testing.T) {
	const limit = 1000 // bytes/s; the bucket holds max(limit, 64 KiB)
	s := startRelay(t, func(c *Config) { c.BandwidthLimit = limit })
	a := deviceClient(t, "udp", s.Addrs().UDP[0].String(), "device-a")
	b := deviceClient(t, "udp", s.Addrs().UDP[0].String(), "device-b")
	exchange(t, a, b) // well under the burst: everything passes
	require.Zero(t, s.Stats().PacketsDropped, "dropped under the limit")
	// 200 KB at once is far over a 64 KiB bucket refilling at 1 KB/s.
	msg := make([]byte, 1000)
	for range 200 {
		_, err := a.relay.WriteTo(msg, b.relay.LocalAddr())
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return s.Stats().PacketsDropped > 0 }, 10*time.Second, 5*time.Millisecond, "datagrams over the limit to be dropped")
}

func TestCloseWithLiveAllocations(t *testing.T) {
	s, err := New(t.Context(), Config{
		Secret: testSecret, RelayAddress: netip.MustParseAddr("127.0.0.1"),
		UDPListen: []string{"127.0.0.1:0"}, TCPListen: []string{"127.0.0.1:0"}, Logger: testLogger(),
	})
	require.NoError(t, err)
	a := deviceClient(t, "udp", s.Addrs().UDP[0].String(), "device-a")
	b := deviceClient(t, "tcp", s.Addrs().TCP[0].String(), "device-b")
	exchange(t, a, b)
	require.NoError(t, s.Close(), "Close")
	assert.Zero(t, s.Stats().Allocations, "allocations after Close")
	for range 2 {
		assert.ErrorIs(t, s.Close(), net.ErrClosed, "a later Close")
	}
	// The relay's sockets are gone.
	if c, err := net.Dial("tcp", s.Addrs().TCP[0].String()); err == nil {
		c.Close()
		assert.Fail(t, "TCP listener still accepts after Close")
	}
	a.close()
	b.close()
	goleak.VerifyNone(t)
}

// TestCloseConcurrent: of Close calls made at once, one closes the relay and returns nil; the
// others return, after it, an error wrapping net.ErrClosed.
func TestCloseConcurrent(t *testing.T) {
	s, err := New(t.Context(), Config{Secret: testSecret, PublicIP: netip.MustParseAddr("127.0.0.1"),
		UDPListen: []string{"127.0.0.1:0"}, Logger: testLogger()})
	require.NoError(t, err)
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() { errs <- s.Close() }()
	}
	closed := 0
	for range cap(errs) {
		if err := <-errs; err != nil {
			assert.ErrorIs(t, err, net.ErrClosed)
			assert.EqualError(t, err, "relay: close: "+net.ErrClosed.Error())
		} else {
			closed++
		}
	}
	assert.Equal(t, 1, closed, "Close calls that returned nil")
}

func TestConfigValidation(t *testing.T) {
	base := func() Config {
		return Config{Secret: testSecret, PublicIP: netip.MustParseAddr("192.0.2.1"), UDPListen: []string{"127.0.0.1:0"}}
	}
	bad := map[string]func(*Config){
		"no secret":        func(c *Config) { c.Secret = nil },
		"no listener":      func(c *Config) { c.UDPListen = nil },
		"no public ip":     func(c *Config) { c.PublicIP = netip.Addr{} },
		"unspecified ip":   func(c *Config) { c.PublicIP = netip.IPv4Unspecified() },
		"mixed families":   func(c *Config) { c.RelayAddress = netip.IPv6Loopback() },
		"tls without cert": func(c *Config) { c.TLSListen = "127.0.0.1:0" },
		"negative quota":   func(c *Config) { c.QuotaPerUser = -1 },
		"negative rate":    func(c *Config) { c.BandwidthLimit = -1 },
		"half port range":  func(c *Config) { c.MinRelayPort = 40000 },
		"inverted range":   func(c *Config) { c.MinRelayPort, c.MaxRelayPort = 50000, 40000 },
	}
	for name, f := range bad {
		c := base()
		f(&c)
		s, err := New(t.Context(), c)
		if s != nil {
			_ = s.Close()
		}
		assert.ErrorIs(t, err, ErrInvalidConfig, name)
	}
	// A listener that cannot be opened: the error names it and nothing stays open.
	c := base()
	c.UDPListen = []string{"127.0.0.1:0", "256.0.0.1:1"}
	_, err := New(t.Context(), c)
	assert.ErrorContains(t, err, "256.0.0.1", "bad listen address")
}

func TestRelayPortRange(t *testing.T) {
	// Find a few free ports for the range; another process might take one meanwhile, which
	// the relay survives by trying others.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	pc.Close()
	lo := min(port, 65535-8)
	s := startRelay(t, func(c *Config) { c.MinRelayPort, c.MaxRelayPort = lo, lo+8 })
	r := deviceClient(t, "udp", s.Addrs().UDP[0].String(), "device-a").relay.LocalAddr()
	got := uint16(r.(*net.UDPAddr).Port)
	assert.GreaterOrEqual(t, got, lo, "relay port")
	assert.LessOrEqual(t, got, lo+8, "relay port")
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "relay.test"},
		DNSNames:              []string{"relay.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestDeniedPeers(t *testing.T) {
	s := startRelay(t, func(c *Config) { c.DeniedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	c := deviceClient(t, "udp", s.Addrs().UDP[0].String(), "device-a")
	for _, peer := range []string{"127.0.0.2:9", "0.0.0.0:9", "224.0.0.1:9", "169.254.1.1:9"} {
		before := s.Stats().PeersRefused
		assert.Error(t, c.client.CreatePermission(net.UDPAddrFromAddrPort(netip.MustParseAddrPort(peer))), "permission to %s granted", peer)
		assert.Equal(t, before+1, s.Stats().PeersRefused, "refusal for %s counted", peer)
	}
	// The relay's own public address stays allowed (relayed to relayed).
	assert.NoError(t, c.client.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}), "permission to the relay's own address")
}

// TestAuthFailuresThrottledPerSource: a burst of bad credentials from one source address is
// throttled: past the burst, even good credentials from it are refused without a check, while
// another source authenticates as usual; forged passwords (a message integrity that does not
// match) count as failures too.
func TestAuthFailuresThrottledPerSource(t *testing.T) {
	s := startRelay(t, func(c *Config) { c.AuthFailureRate, c.AuthFailureBurst = 1e-6, 3 })
	srv := s.Addrs().UDP[0].String()
	goodUser, goodPass := mint("device-a", time.Hour)
	expUser, expPass := mint("device-a", -time.Minute)
	const attacker, other = "127.0.0.1", "127.0.0.2"

	assert.Equal(t, stun.CodeBadRequest, rawAllocateFrom(t, attacker, srv, expUser, expPass, DefaultRealm), "expired")
	assert.Equal(t, stun.CodeBadRequest, rawAllocateFrom(t, attacker, srv, goodUser, "forged", DefaultRealm), "forged password")
	assert.Equal(t, stun.CodeBadRequest, rawAllocateFrom(t, attacker, srv, goodUser, goodPass, "other-realm"), "wrong realm")
	assert.Equal(t, int64(3), s.Stats().AuthFailures)
	assert.Zero(t, s.Stats().AuthThrottled)

	assert.Equal(t, stun.CodeBadRequest, rawAllocateFrom(t, attacker, srv, goodUser, goodPass, DefaultRealm), "a throttled source, even with good credentials")
	assert.Equal(t, int64(1), s.Stats().AuthThrottled)
	assert.Equal(t, int64(3), s.Stats().AuthFailures, "a throttled request is not a failure of its own")

	assert.Zero(t, rawAllocateFrom(t, other, srv, goodUser, goodPass, DefaultRealm), "another source is not throttled")
	assert.Equal(t, stun.CodeBadRequest, rawAllocateFrom(t, other, srv, expUser, expPass, DefaultRealm), "and its own failures still fail")
}

func TestSourceKey(t *testing.T) {
	assert.Equal(t, netip.MustParsePrefix("192.0.2.1/32"), sourceKey(&net.UDPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}))
	assert.Equal(t, netip.MustParsePrefix("192.0.2.1/32"), sourceKey(&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 1}))
	assert.Equal(t, netip.MustParsePrefix("2001:db8:1:2::/64"), sourceKey(&net.UDPAddr{IP: net.ParseIP("2001:db8:1:2::99"), Port: 1}))
	assert.Equal(t, netip.Prefix{}, sourceKey(nil))
}
