package mesh

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/key"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestPathSelector(t *testing.T) {
	var p pathSelector
	c1, c2, c3 := ap("192.168.1.5:51820"), ap("203.0.113.7:40000"), ap("198.51.100.1:3478")
	requireTargets := func(msg string, wantCur netip.AddrPort, wantCands ...netip.AddrPort) {
		t.Helper()
		cur, cands := p.targets()
		require.Equal(t, wantCur, cur, msg)
		require.Equal(t, len(wantCands), len(cands), msg)
		for i := range wantCands {
			require.Equal(t, wantCands[i], cands[i], msg)
		}
	}

	requireTargets("empty selector", netip.AddrPort{})
	p.setCandidates([]netip.AddrPort{c1, c2})
	requireTargets("unconfirmed: all candidates", netip.AddrPort{}, c1, c2)
	// The first address wireguard-go accepts becomes the path.
	require.True(t, p.learn(c2, p.epoch()), "learn did not change the path")
	requireTargets("learned", c2)
	require.False(t, p.learn(c2, p.epoch()), "learning the current path again reported a change")
	// Unchanged candidates keep the path; candidates without it drop it.
	require.False(t, p.setCandidates([]netip.AddrPort{c1, c2}), "same candidates reset the path")
	require.True(t, p.setCandidates([]netip.AddrPort{c1}), "candidates without the path did not reset it")
	requireTargets("after reset", netip.AddrPort{}, c1)
	// A pin wins over observations made before it.
	stale := p.epoch()
	p.pin(c3)
	require.False(t, p.learn(c1, stale), "stale observation overrode the pin")
	cur, pinned, relayed, _ := p.status()
	require.Equal(t, c3, cur)
	require.True(t, pinned)
	require.False(t, relayed)
	// A pinned path survives candidate changes...
	require.False(t, p.setCandidates([]netip.AddrPort{c2}), "candidate change dropped a pinned path")
	// ...but follows the peer when it roams after the pin.
	require.True(t, p.learn(c1, p.epoch()), "roaming after the pin not followed")
	require.Equal(t, c1, p.current())
	// Unpinning goes back to the candidates.
	p.pin(netip.AddrPort{})
	requireTargets("after unpin", netip.AddrPort{}, c2)
	require.False(t, p.learn(netip.AddrPort{}, p.epoch()), "learned an invalid address")

	// A relay route is the path until left explicitly; roaming does not move it.
	p.pin(c1)
	send := func([]byte) error { return nil }
	p.setRelay(send)
	r, cur, cands := p.route()
	require.NotNil(t, r)
	require.False(t, cur.IsValid())
	require.Empty(t, cands)
	cur, pinned, relayed, since := p.status()
	require.False(t, cur.IsValid())
	require.False(t, pinned)
	require.True(t, relayed)
	require.False(t, since.IsZero())
	require.False(t, p.learn(c2, p.epoch()), "a packet from the socket moved a relayed path")
	require.True(t, p.relayed())
	// Leaving the relay without an address goes back to the candidates...
	p.setRelay(nil)
	r, _, _ = p.route()
	require.Nil(t, r)
	requireTargets("after relay off", netip.AddrPort{}, c2)
	// ...and a pin leaves it for that address.
	p.setRelay(send)
	p.pin(c3)
	r, cur, _ = p.route()
	require.Nil(t, r)
	require.Equal(t, c3, cur)
	require.False(t, p.relayed())
}

// TestEndpointChange restarts one node on a new port with the same key; the other is told the
// new endpoint and traffic recovers.
func TestEndpointChange(t *testing.T) {
	a, b := connectedPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	l := b.listenEcho(t, ":80")
	require.NoError(t, echoRoundTrip(ctx, a, "tcp", tcpAddr(b.v4, 80), []byte("one")))
	oldPort := b.m.LocalAddr().Port()
	l.Close()
	waitHandshakeAge(t, a)
	b.m.Close()

	b2 := startTestNode(t, 2, b.priv)
	if b2.m.LocalAddr().Port() == oldPort {
		t.Skip("kernel gave the same port again")
	}
	b2.listenEcho(t, ":80")
	connectAll(t, a, b2)
	require.NoError(t, echoRoundTrip(ctx, a, "tcp", tcpAddr(b2.v4, 80), []byte("two")))
	require.Equal(t, b2.endpoint(), a.m.Peers()[0].Endpoint, "path")
}

// waitHandshakeAge waits until n's last handshake with every peer is older than wireguard-go's
// initiation flood limit (50 ms): a node restarted faster than that would have its first
// initiation rejected as a flood and wait for the 5 s retry — an artifact of restarting within
// milliseconds in a test.
func waitHandshakeAge(t *testing.T, n *testNode) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, p := range n.m.Peers() {
			assert.GreaterOrEqual(c, time.Since(p.LastHandshake), 100*time.Millisecond, "handshake too recent")
		}
	}, testTimeout, pollEvery)
}

// TestRoamingLearned restarts one node on a new port without telling the other: the restarted
// node's handshake from the new address must teach the other node the new path (the initiation
// is mapped to the peer by its static key, and the path moves once WireGuard accepted it).
func TestRoamingLearned(t *testing.T) {
	a, b := connectedPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	a.listenEcho(t, ":80")
	require.NoError(t, echoRoundTrip(ctx, b, "tcp", tcpAddr(a.v4, 80), []byte("one")))
	waitHandshakeAge(t, a)
	b.m.Close()
	b2 := startTestNode(t, 2, b.priv)
	// Only b2 learns about a; a keeps b's old endpoint.
	require.NoError(t, b2.m.SetPeers(ctx, []Peer{a.asPeer()}))
	require.NoError(t, echoRoundTrip(ctx, b2, "tcp", tcpAddr(a.v4, 80), []byte("two")))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, b2.m.LocalAddr().Port(), a.m.Peers()[0].Endpoint.Port(), "a has not learned b's new address")
	}, testTimeout, pollEvery)
	// a can now open connections to b2 on its own.
	b2.listenEcho(t, ":81")
	require.NoError(t, echoRoundTrip(ctx, a, "tcp", tcpAddr(b2.v6, 81), []byte("three")))
}

// TestSetPeerPath moves a's path to b from 127.0.0.1 to [::1] (the same dual-stack socket) while
// a TCP stream flows; b learns a's new address from the traffic.
func TestSetPeerPath(t *testing.T) {
	a, b := connectedPair(t)
	b.listenEcho(t, ":80")
	c := a.dial(t, tcpAddr(b.v4, 80))
	require.NoError(t, echo(c, []byte("before")))

	v6path := netip.AddrPortFrom(netip.IPv6Loopback(), b.m.LocalAddr().Port())
	require.NoError(t, a.m.SetPeerPath(b.pub, v6path))
	st := a.m.Peers()[0]
	require.Equal(t, v6path, st.Endpoint, "status after pin")
	require.True(t, st.Pinned, "status after pin")
	require.NoError(t, echo(c, []byte("after")))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.True(c, b.m.Peers()[0].Endpoint.Addr().Is6(), "b still sends to IPv4")
	}, testTimeout, pollEvery)
	require.NoError(t, echo(c, []byte("after b learned")))

	// A dead path stalls traffic; pinning a working one again recovers the same connection.
	require.NoError(t, a.m.SetPeerPath(b.pub, netip.AddrPortFrom(loopback, 9)))
	require.NoError(t, a.m.SetPeerPath(b.pub, netip.AddrPort{})) // unpin: back to published endpoints
	require.NoError(t, echo(c, []byte("after unpin")))
	require.ErrorIs(t, a.m.SetPeerPath(key.Key{1}, v6path), ErrUnknownPeer)
}
