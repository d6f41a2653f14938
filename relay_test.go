package nexodus_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pion/stun/v4"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/nexodustest"
	"github.com/nexodus-sdk/nexodus/relay"
)

// tap is a UDP proxy in front of the relay that keeps a copy of every datagram it forwards
// in either direction: what a wiretap on the relay's link would see.
type tap struct {
	pc       net.PacketConn
	upstream netip.AddrPort
	mu       sync.Mutex
	seen     bytes.Buffer
	conns    map[netip.AddrPort]*net.UDPConn
	wg       sync.WaitGroup
}

func newTap(t *testing.T, upstream netip.AddrPort) *tap {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	tp := &tap{pc: pc, upstream: upstream, conns: map[netip.AddrPort]*net.UDPConn{}}
	tp.wg.Add(1)
	go tp.run()
	t.Cleanup(tp.close)
	return tp
}

func (tp *tap) addr() string { return tp.pc.LocalAddr().String() }

func (tp *tap) record(b []byte) {
	tp.mu.Lock()
	tp.seen.Write(b)
	tp.mu.Unlock()
}

func (tp *tap) run() {
	defer tp.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := tp.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		tp.record(buf[:n])
		client := from.(*net.UDPAddr).AddrPort()
		tp.mu.Lock()
		up, ok := tp.conns[client]
		if !ok {
			up, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(tp.upstream))
			if err != nil {
				tp.mu.Unlock()
				continue
			}
			tp.conns[client] = up
			tp.wg.Add(1)
			go func() { // relay → client
				defer tp.wg.Done()
				b := make([]byte, 65536)
				for {
					n, err := up.Read(b)
					if err != nil {
						return
					}
					tp.record(b[:n])
					tp.pc.WriteTo(b[:n], net.UDPAddrFromAddrPort(client))
				}
			}()
		}
		tp.mu.Unlock()
		up.Write(buf[:n])
	}
}

func (tp *tap) bytes() []byte {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return bytes.Clone(tp.seen.Bytes())
}

func (tp *tap) close() {
	tp.pc.Close()
	tp.mu.Lock()
	for _, c := range tp.conns {
		c.Close()
	}
	tp.mu.Unlock()
	tp.wg.Wait()
}

func startRelay(t *testing.T, secret []byte, udp string) *relay.Server {
	t.Helper()
	r, err := relay.New(testCtx(t), relay.Config{
		Secret:    secret,
		PublicIP:  netip.MustParseAddr("127.0.0.1"),
		UDPListen: []string{udp},
		Logger:    testLogger(t).With("component", "relay"),
	})
	require.NoError(t, err, "start relay on %s", udp)
	return r
}

func relayedPeer(n *nexodus.Node, hostname string) bool {
	for _, p := range n.Peers() {
		if p.Hostname == hostname && p.Path == nexodus.PathRelayed && p.LocalCandidate == nexodus.CandidateRelay {
			return true
		}
	}
	return false
}

// TestRelayedPathCarriesOnlyCiphertext forces two nodes through a real TURN relay and checks
// that data flows, that the path is reported as relayed, that the bytes the relay forwards
// never contain what the application sent, and that the path comes back after the relay dies
// and returns.
func TestRelayedPathCarriesOnlyCiphertext(t *testing.T) {
	secret := []byte("relay-secret-for-tests-only-0123")
	rl := startRelay(t, secret, "127.0.0.1:0")
	relayAddr := rl.Addrs().UDP[0]
	tp := newTap(t, relayAddr)

	ctx := testCtx(t)
	e := newEnvConfig(t, func(c *coordinator.Config) {
		c.RelaySecret = secret
		c.TURNServers = []string{"turn:" + tp.addr() + "?transport=udp"}
	})
	srv := e.up("srv", nexodustest.ForceRelay())
	cli := e.up("cli", nexodustest.ForceRelay())
	serveEcho(t, srv, ":7000")

	marker := "PLAINTEXT-MARKER-that-must-never-cross-the-relay"
	require.Eventually(t, func() bool {
		c, cancel := context.WithTimeout(ctx, 3e9)
		defer cancel()
		return echoLine(c, cli, "srv:7000", marker) == nil
	}, waitTimeout, waitTick, "a relayed echo")
	require.Eventually(t, func() bool {
		return relayedPeer(cli, "srv") && relayedPeer(srv, "cli")
	}, waitTimeout, waitTick, "both sides to report a relayed path")
	seen := tp.bytes()
	require.NotEmpty(t, seen, "nothing went through the relay")
	// Not require.NotContains: on failure it would print the whole capture.
	require.False(t, bytes.Contains(seen, []byte(marker)) || bytes.Contains(seen, []byte("PLAINTEXT-MARKER")),
		"the relay forwarded the application's plaintext")
	require.NotZero(t, rl.Stats().BytesRelayed, "relay counters did not move: %+v", rl.Stats())

	// The relay dies: the relayed path is reported lost.
	require.NoError(t, rl.Close())
	require.Eventually(t, func() bool {
		for _, p := range cli.Peers() {
			if p.Hostname == "srv" && p.LocalCandidate == "" {
				return true
			}
		}
		return false
	}, waitTimeout, waitTick, "the lost relay to be reported")
	// It comes back on the same address: the nodes find the path again by themselves.
	rl = startRelay(t, secret, relayAddr.String())
	t.Cleanup(func() { rl.Close() })
	require.Eventually(t, func() bool {
		c, cancel := context.WithTimeout(ctx, 3e9)
		defer cancel()
		return relayedPeer(cli, "srv") && echoLine(c, cli, "srv:7000", "after the relay came back") == nil
	}, waitTimeout, waitTick, "the relayed path to come back")
}

// echoLine dials, sends one line and checks the echo.
func echoLine(ctx context.Context, n *nexodus.Node, addr, line string) error {
	c, err := n.Dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	msg := line + "\n"
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo mismatch")
	}
	return nil
}

// TestNodeSwitchesToOrgRelays: two nodes relayed through the coordinator's default relay move
// to the organization's own relay (another secret) once the owner sets it, told by the event
// stream, and back when it is cleared.
func TestNodeSwitchesToOrgRelays(t *testing.T) {
	defSecret := []byte("default-relay-secret-for-tests-0")
	orgSecret := "organization-relay-secret-for-tests"
	def := startRelay(t, defSecret, "127.0.0.1:0")
	t.Cleanup(func() { def.Close() })
	own := startRelay(t, []byte(orgSecret), "127.0.0.1:0")
	t.Cleanup(func() { own.Close() })

	ctx := testCtx(t)
	e := newEnvConfig(t, func(c *coordinator.Config) {
		c.RelaySecret = defSecret
		c.TURNServers = []string{"turn:" + def.Addrs().UDP[0].String() + "?transport=udp"}
		c.SealKey = bytes.Repeat([]byte{7}, 32)
	})
	srv := e.up("srv", nexodustest.ForceRelay())
	cli := e.up("cli", nexodustest.ForceRelay())
	serveEcho(t, srv, ":7000")
	echo := func(line string) bool {
		c, cancel := context.WithTimeout(ctx, 3e9)
		defer cancel()
		return relayedPeer(cli, "srv") && echoLine(c, cli, "srv:7000", line) == nil
	}
	require.Eventually(t, func() bool { return echo("default") }, waitTimeout, waitTick, "a relayed echo through the default relay")
	require.NotZero(t, def.Stats().BytesRelayed, "the default relay relayed nothing: default relay %+v, organization relay %+v",
		def.Stats(), own.Stats())
	require.Zero(t, own.Stats().AllocationsTotal, "the organization's relay was used before it was set: default relay %+v, organization relay %+v",
		def.Stats(), own.Stats())

	_, err := e.kit.User.Client.SetOrgRelays(ctx, e.kit.User.OrgID, api.SetOrgRelaysRequest{
		TURN: []string{"turn:" + own.Addrs().UDP[0].String() + "?transport=udp"}, Secret: orgSecret,
	})
	require.NoError(t, err)
	// An echo goes through r when r relays it and the other relay relays nothing meanwhile.
	through := func(r, other *relay.Server, line string) bool {
		rb, ob := r.Stats().BytesRelayed, other.Stats().BytesRelayed
		return echo(line) && r.Stats().BytesRelayed > rb && other.Stats().BytesRelayed == ob
	}
	require.Eventually(t, func() bool {
		return through(own, def, "organization")
	}, waitTimeout, waitTick, "the path to move to the organization's relay")

	require.NoError(t, e.kit.User.Client.ClearOrgRelays(ctx, e.kit.User.OrgID))
	require.Eventually(t, func() bool {
		return through(def, own, "default again")
	}, waitTimeout, waitTick, "the path to move back to the default relay")
}

// stunCounter answers STUN Binding requests on 127.0.0.1 and counts them.
type stunCounter struct {
	pc   net.PacketConn
	n    atomic.Int64
	done chan struct{}
}

func newSTUNCounter(t *testing.T) *stunCounter {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	s := &stunCounter{pc: pc, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			ua, ok := from.(*net.UDPAddr)
			if req.Decode() != nil || req.Type != stun.BindingRequest || !ok {
				continue
			}
			s.n.Add(1)
			resp, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
				&stun.XORMappedAddress{IP: ua.IP, Port: ua.Port}, stun.Fingerprint)
			if err == nil {
				pc.WriteTo(resp.Raw, from)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-s.done
	})
	return s
}

func (s *stunCounter) addr() string { return s.pc.LocalAddr().String() }

// TestNodeFollowsOrgSTUNServers: when the organization names its own STUN servers, the running
// node's NAT detection (and ICE) moves to them, told by the event stream: it used to keep
// querying the servers it started with.
func TestNodeFollowsOrgSTUNServers(t *testing.T) {
	secret := []byte("default-relay-secret-for-tests-0")
	def, own := newSTUNCounter(t), newSTUNCounter(t)
	rl := startRelay(t, secret, "127.0.0.1:0")
	t.Cleanup(func() { rl.Close() })
	ctx := testCtx(t)
	e := newEnvConfig(t, func(c *coordinator.Config) {
		// NAT detection needs two servers; the relay answers STUN too.
		c.STUNServers = []string{def.addr(), rl.Addrs().UDP[0].String()}
		c.RelaySecret = secret
		c.TURNServers = []string{"turn:" + rl.Addrs().UDP[0].String() + "?transport=udp"}
		c.SealKey = bytes.Repeat([]byte{7}, 32)
	})
	n := e.up("a")
	require.Eventually(t, func() bool {
		return n.Status().ReflexiveAddr.IsValid() && def.n.Load() > 0
	}, waitTimeout, waitTick, "a reflexive address from the default STUN server")
	require.Zero(t, own.n.Load(), "the organization's STUN server was asked before it was named")

	_, err := e.kit.User.Client.SetOrgRelays(ctx, e.kit.User.OrgID, api.SetOrgRelaysRequest{
		STUN: []string{own.addr(), rl.Addrs().UDP[0].String()},
		TURN: []string{"turn:" + rl.Addrs().UDP[0].String() + "?transport=udp"}, Secret: "organization-relay-secret-for-tests",
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return own.n.Load() > 0 }, waitTimeout, waitTick, "a NAT check against the organization's STUN server")
}
