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
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
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
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func mint(device string, ttl time.Duration) (string, string) {
	return turncred.Mint(testSecret, device, time.Now().Add(ttl))
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
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	case "tcp":
		c, err := net.Dial("tcp", server)
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	case "tls":
		c, err := tls.Dial("tcp", server, tlsCfg)
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	default:
		t.Fatalf("transport %q", transport)
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
		t.Fatal(err)
	}
	if err := cl.Listen(); err != nil {
		cl.Close()
		_ = conn.Close()
		t.Fatal(err)
	}
	tc := &turnClient{t: t, conn: conn, client: cl}
	t.Cleanup(tc.close)
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
	if err := c.allocate(); err != nil {
		c.t.Fatalf("allocate: %v", err)
	}
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

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readFrom reads one datagram with a deadline.
func readFrom(t *testing.T, pc net.PacketConn) ([]byte, net.Addr) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read from relay: %v", err)
	}
	return buf[:n], from
}

func TestSTUNBindingEveryListener(t *testing.T) {
	s := startRelay(t)
	a := s.Addrs()
	if len(a.UDP) != 2 || len(a.TCP) != 1 || a.UDP[0].Port() == 0 || a.UDP[0].Port() == a.UDP[1].Port() {
		t.Fatalf("Addrs = %+v", a)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	local := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, srv := range a.UDP {
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
		if _, err := pc.WriteTo(req.Raw, net.UDPAddrFromAddrPort(srv)); err != nil {
			t.Fatal(err)
		}
		b, _ := readFrom(t, pc)
		if got := mappedAddr(t, b, req.TransactionID); got != local {
			t.Errorf("UDP %s: mapped address %s, want %s", srv, got, local)
		}
	}
	for _, srv := range a.TCP {
		c, err := net.Dial("tcp", srv.String())
		if err != nil {
			t.Fatal(err)
		}
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
		if _, err := c.Write(req.Raw); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		hdr := make([]byte, 20)
		if _, err := io.ReadFull(c, hdr); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, int(hdr[2])<<8|int(hdr[3]))
		if _, err := io.ReadFull(c, body); err != nil {
			t.Fatal(err)
		}
		want := c.LocalAddr().(*net.TCPAddr).AddrPort()
		if got := mappedAddr(t, append(hdr, body...), req.TransactionID); got != want {
			t.Errorf("TCP %s: mapped address %s, want %s", srv, got, want)
		}
		c.Close()
	}
}

func mappedAddr(t *testing.T, raw []byte, tid [stun.TransactionIDSize]byte) netip.AddrPort {
	t.Helper()
	m := &stun.Message{Raw: raw}
	if err := m.Decode(); err != nil {
		t.Fatalf("decode STUN response: %v", err)
	}
	if m.Type != stun.BindingSuccess || m.TransactionID != tid {
		t.Fatalf("response %v, want a binding success for our transaction", m.Type)
	}
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(m); err != nil {
		t.Fatalf("XOR-MAPPED-ADDRESS: %v", err)
	}
	ip, _ := netip.AddrFromSlice(xa.IP)
	return netip.AddrPortFrom(ip.Unmap(), uint16(xa.Port))
}

// exchange relays datagrams both ways between two allocations and checks them byte for byte.
func exchange(t *testing.T, a, b *turnClient) {
	t.Helper()
	ra, rb := a.relay.LocalAddr(), b.relay.LocalAddr()
	if err := a.client.CreatePermission(rb); err != nil {
		t.Fatalf("CreatePermission: %v", err)
	}
	if err := b.client.CreatePermission(ra); err != nil {
		t.Fatalf("CreatePermission: %v", err)
	}
	for i := range 5 {
		// WireGuard-like payload: type byte, then opaque bytes, including every byte value.
		msg := make([]byte, 148+i*300)
		msg[0] = 4
		for j := 1; j < len(msg); j++ {
			msg[j] = byte(j * (i + 7))
		}
		if _, err := a.relay.WriteTo(msg, rb); err != nil {
			t.Fatal(err)
		}
		got, from := readFrom(t, b.relay)
		if !bytes.Equal(got, msg) || from.String() != ra.String() {
			t.Fatalf("b got %d bytes from %s, want %d from %s", len(got), from, len(msg), ra)
		}
		reply := append([]byte{4}, bytes.Repeat([]byte{byte(i), 0xff, 0}, 100+i)...)
		if _, err := b.relay.WriteTo(reply, ra); err != nil {
			t.Fatal(err)
		}
		got, from = readFrom(t, a.relay)
		if !bytes.Equal(got, reply) || from.String() != rb.String() {
			t.Fatalf("a got %d bytes from %s, want %d from %s", len(got), from, len(reply), rb)
		}
	}
}

func TestRelayUDP(t *testing.T) {
	s := startRelay(t)
	srv := s.Addrs().UDP[0].String()
	ua, pa := mint("device-a", time.Hour)
	ub, pb := mint("device-b", time.Hour)
	a := newTurnClient(t, "udp", srv, ua, pa, nil)
	b := newTurnClient(t, "udp", s.Addrs().UDP[1].String(), ub, pb, nil)
	ra, rb := a.mustAllocate(), b.mustAllocate()
	for _, r := range []net.Addr{ra, rb} {
		if ip := r.(*net.UDPAddr).IP.String(); ip != "127.0.0.1" {
			t.Errorf("relayed address %s, want the public IP 127.0.0.1", r)
		}
	}
	if st := s.Stats(); st.Allocations != 2 || st.AllocationsTotal != 2 {
		t.Errorf("stats after two allocations: %+v", st)
	}
	exchange(t, a, b)
	// Each datagram crosses two relay sockets (one out, one in): 10 datagrams, 20 socket passes.
	// The sender's count may land just after the receiver got the datagram.
	eventually(t, "relayed traffic to be counted", func() bool {
		st := s.Stats()
		return st.PacketsRelayed >= 20 && st.BytesRelayed >= 2*(5*148+5*300)
	})
	a.close()
	b.close()
	eventually(t, "allocations released", func() bool { return s.Stats().Allocations == 0 })
	if st := s.Stats(); st.AllocationsTotal != 2 || st.AuthFailures != 0 {
		t.Errorf("stats at the end: %+v", st)
	}
}

func TestRelayTCPAndTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	s := startRelay(t, func(c *Config) {
		c.TLSListen = "127.0.0.1:0"
		c.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	})
	addrs := s.Addrs()
	if !addrs.TLS.IsValid() || addrs.TLS.Port() == 0 {
		t.Fatalf("TLS address %v", addrs.TLS)
	}
	ua, pa := mint("device-tcp", time.Hour)
	ub, pb := mint("device-tls", time.Hour)
	uc, pc := mint("device-udp", time.Hour)
	a := newTurnClient(t, "tcp", addrs.TCP[0].String(), ua, pa, nil)
	b := newTurnClient(t, "tls", addrs.TLS.String(), ub, pb,
		&tls.Config{RootCAs: pool, ServerName: "relay.test", MinVersion: tls.VersionTLS12})
	c := newTurnClient(t, "udp", addrs.UDP[0].String(), uc, pc, nil)
	a.mustAllocate()
	b.mustAllocate()
	c.mustAllocate()
	exchange(t, a, b) // TCP client <-> TLS client
	exchange(t, a, c) // TCP client <-> UDP client
	if st := s.Stats(); st.Allocations != 3 {
		t.Errorf("stats: %+v", st)
	}
	// Closing the TCP connection ends its allocation.
	a.close()
	eventually(t, "the TCP client's allocation to end", func() bool { return s.Stats().Allocations == 2 })
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
			if err := c.allocate(); err == nil {
				t.Fatal("allocation succeeded")
			}
			if st := s.Stats(); st.AuthFailures <= before || st.Allocations != 0 {
				t.Errorf("stats: %+v (auth failures before: %d)", st, before)
			}
			// The same refusal, seen on the wire: 400 to a complete, signed request.
			if code := rawAllocate(t, srv, tc.user, tc.pass, "nexodus-test"); code != stun.CodeBadRequest {
				t.Errorf("raw allocate: code %d, want 400", code)
			}
		})
	}
	t.Run("wrong realm", func(t *testing.T) {
		before := s.Stats().AuthFailures
		if code := rawAllocate(t, srv, goodUser, goodPass, "other-realm"); code != stun.CodeBadRequest {
			t.Errorf("raw allocate: code %d, want 400", code)
		}
		if s.Stats().AuthFailures <= before {
			t.Error("auth failure not counted")
		}
	})
	t.Run("control: good credentials", func(t *testing.T) {
		if code := rawAllocate(t, srv, goodUser, goodPass, "nexodus-test"); code != 0 {
			t.Fatalf("raw allocate with good credentials: code %d", code)
		}
		c := newTurnClient(t, "udp", srv, goodUser, goodPass, nil)
		c.mustAllocate()
	})
}

// rawAllocate performs the two-step authenticated Allocate by hand, so the request can name any
// realm, and returns the error code of the final answer (0 for success). A successful
// allocation is released again.
func rawAllocate(t *testing.T, server, user, pass, realm string) stun.ErrorCode {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	to, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	udp := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	roundTrip := func(setters ...stun.Setter) *stun.Message {
		t.Helper()
		req := stun.MustBuild(setters...)
		if _, err := pc.WriteTo(req.Raw, to); err != nil {
			t.Fatal(err)
		}
		b, _ := readFrom(t, pc)
		m := &stun.Message{Raw: b}
		if err := m.Decode(); err != nil {
			t.Fatal(err)
		}
		if m.TransactionID != req.TransactionID {
			t.Fatal("answer to another transaction")
		}
		return m
	}
	allocate := stun.NewType(stun.MethodAllocate, stun.ClassRequest)
	m := roundTrip(stun.TransactionID, allocate, udp, stun.Fingerprint)
	var nonce stun.Nonce
	var code stun.ErrorCodeAttribute
	if err := code.GetFrom(m); err != nil || code.Code != stun.CodeUnauthorized {
		t.Fatalf("first answer %v (%v), want 401", code, err)
	}
	if err := nonce.GetFrom(m); err != nil {
		t.Fatal(err)
	}
	m = roundTrip(stun.TransactionID, allocate, udp, stun.NewUsername(user), stun.NewRealm(realm), nonce,
		stun.NewLongTermIntegrity(user, realm, pass), stun.Fingerprint)
	if m.Type.Class == stun.ClassSuccessResponse {
		// Release it: Refresh with lifetime 0.
		lifetime0 := stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}
		roundTrip(stun.TransactionID, stun.NewType(stun.MethodRefresh, stun.ClassRequest), lifetime0,
			stun.NewUsername(user), stun.NewRealm(realm), nonce, stun.NewLongTermIntegrity(user, realm, pass), stun.Fingerprint)
		return 0
	}
	if err := code.GetFrom(m); err != nil {
		t.Fatalf("error answer without a code: %v", err)
	}
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
	err := over.allocate()
	if err == nil || !strings.Contains(err.Error(), "486") {
		t.Fatalf("third allocation: %v, want a 486 refusal", err)
	}
	if st := s.Stats(); st.QuotaRejections != 1 || st.Allocations != 2 {
		t.Errorf("stats: %+v", st)
	}
	// Another device is not affected.
	uo, po := mint("device-other", time.Hour)
	newTurnClient(t, "udp", srv, uo, po, nil).mustAllocate()
	// Releasing one allocation makes room again.
	held[0].close()
	eventually(t, "the released allocation to leave the quota", func() bool { return s.Stats().Allocations == 2 })
	u, p = mint("device-q", 3*time.Hour)
	newTurnClient(t, "udp", srv, u, p, nil).mustAllocate()
}

func TestBandwidthLimit(t *testing.T) {
	const limit = 1000 // bytes/s; the bucket holds max(limit, 64 KiB)
	s := startRelay(t, func(c *Config) { c.BandwidthLimit = limit })
	ua, pa := mint("device-a", time.Hour)
	ub, pb := mint("device-b", time.Hour)
	a := newTurnClient(t, "udp", s.Addrs().UDP[0].String(), ua, pa, nil)
	b := newTurnClient(t, "udp", s.Addrs().UDP[0].String(), ub, pb, nil)
	a.mustAllocate()
	b.mustAllocate()
	exchange(t, a, b) // well under the burst: everything passes
	if st := s.Stats(); st.PacketsDropped != 0 {
		t.Fatalf("dropped under the limit: %+v", st)
	}
	// 200 KB at once is far over a 64 KiB bucket refilling at 1 KB/s.
	msg := make([]byte, 1000)
	for range 200 {
		if _, err := a.relay.WriteTo(msg, b.relay.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "datagrams over the limit to be dropped", func() bool { return s.Stats().PacketsDropped > 0 })
}

func TestCloseWithLiveAllocations(t *testing.T) {
	s, err := New(t.Context(), Config{
		Secret: testSecret, RelayAddress: netip.MustParseAddr("127.0.0.1"),
		UDPListen: []string{"127.0.0.1:0"}, TCPListen: []string{"127.0.0.1:0"}, Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ua, pa := mint("device-a", time.Hour)
	ub, pb := mint("device-b", time.Hour)
	a := newTurnClient(t, "udp", s.Addrs().UDP[0].String(), ua, pa, nil)
	b := newTurnClient(t, "tcp", s.Addrs().TCP[0].String(), ub, pb, nil)
	a.mustAllocate()
	b.mustAllocate()
	exchange(t, a, b)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if st := s.Stats(); st.Allocations != 0 {
		t.Errorf("allocations after Close: %+v", st)
	}
	// The relay's sockets are gone.
	if c, err := net.Dial("tcp", s.Addrs().TCP[0].String()); err == nil {
		c.Close()
		t.Error("TCP listener still accepts after Close")
	}
	a.close()
	b.close()
	goleak.VerifyNone(t)
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
		if s, err := New(t.Context(), c); !errors.Is(err, ErrInvalidConfig) {
			if s != nil {
				_ = s.Close()
			}
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
	// A listener that cannot be opened: the error names it and nothing stays open.
	c := base()
	c.UDPListen = []string{"127.0.0.1:0", "256.0.0.1:1"}
	if _, err := New(t.Context(), c); err == nil || !strings.Contains(err.Error(), "256.0.0.1") {
		t.Errorf("bad listen address: %v", err)
	}
}

func TestRelayPortRange(t *testing.T) {
	// Find a few free ports for the range; another process might take one meanwhile, which
	// the relay survives by trying others.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	pc.Close()
	lo := min(port, 65535-8)
	s := startRelay(t, func(c *Config) { c.MinRelayPort, c.MaxRelayPort = lo, lo+8 })
	u, p := mint("device-a", time.Hour)
	r := newTurnClient(t, "udp", s.Addrs().UDP[0].String(), u, p, nil).mustAllocate()
	if got := uint16(r.(*net.UDPAddr).Port); got < lo || got > lo+8 {
		t.Errorf("relay port %d outside %d-%d", got, lo, lo+8)
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
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
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestDeniedPeers(t *testing.T) {
	s := startRelay(t, func(c *Config) { c.DeniedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	u, p := mint("device-a", time.Hour)
	c := newTurnClient(t, "udp", s.Addrs().UDP[0].String(), u, p, nil)
	c.mustAllocate()
	for _, peer := range []string{"127.0.0.2:9", "0.0.0.0:9", "224.0.0.1:9", "169.254.1.1:9"} {
		before := s.Stats().PeersRefused
		if err := c.client.CreatePermission(net.UDPAddrFromAddrPort(netip.MustParseAddrPort(peer))); err == nil {
			t.Errorf("permission to %s granted", peer)
		}
		if s.Stats().PeersRefused != before+1 {
			t.Errorf("refusal for %s not counted", peer)
		}
	}
	// The relay's own public address stays allowed (relayed to relayed).
	if err := c.client.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}); err != nil {
		t.Errorf("permission to the relay's own address: %v", err)
	}
}
