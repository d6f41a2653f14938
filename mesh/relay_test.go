package mesh

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/nexodus-sdk/nexodus/key"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memRelay stands in for a TURN relay: what one mesh sends through its relay route is handed
// to the other mesh's InjectPacket. Once cut, it drops everything.
type memRelay struct {
	cut     atomic.Bool
	carried atomic.Int64
}

// route returns the send function for packets from node from to node to.
func (r *memRelay) route(from, to *testNode) func([]byte) error {
	return func(b []byte) error {
		if r.cut.Load() {
			return nil // lost, as on a dead relay
		}
		r.carried.Add(1)
		// The relay must not keep b: InjectPacket copies it. Scribble over it after the call
		// to prove that.
		err := to.m.InjectPacket(from.pub, b)
		for i := range b {
			b[i] = 0xee
		}
		return err
	}
}

// blackHole returns an address on 127.0.0.1 where datagrams vanish (a socket nobody reads).
func blackHole(t *testing.T) netip.AddrPort {
	t.Helper()
	return localAddrPort(listenUDP(t, "127.0.0.1:0"))
}

// TestRelayRoute connects two meshes whose published endpoints lead nowhere through an
// in-memory relay, then moves them to the socket with SetPeerPath while a TCP connection stays
// open, and back to the relay.
func TestRelayRoute(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	hole := blackHole(t)
	pa, pb := a.asPeer(), b.asPeer()
	pa.Endpoints, pb.Endpoints = []netip.AddrPort{hole}, []netip.AddrPort{hole}
	require.NoError(t, a.m.SetPeers(context.Background(), []Peer{pb}))
	require.NoError(t, b.m.SetPeers(context.Background(), []Peer{pa}))

	relay := &memRelay{}
	// The side that is not the preferred initiator first, as ICE's controlled agent selects
	// its pair before the controlling one.
	first, second := a, b
	if a.m.bind.preferredInitiator(b.pub) {
		first, second = b, a
	}
	other := func(n *testNode) *testNode {
		if n == a {
			return b
		}
		return a
	}
	for _, n := range []*testNode{first, second} {
		require.NoError(t, n.m.SetPeerRelay(other(n).pub, relay.route(n, other(n))))
	}
	for _, n := range []*testNode{a, b} {
		st := n.m.Peers()[0]
		require.True(t, st.Relayed && !st.Endpoint.IsValid() && !st.Pinned && !st.PathSince.IsZero(), "status while relayed: %+v", st)
	}

	b.listenEcho(t, ":80")
	c := a.dial(t, tcpAddr(b.v4, 80))
	require.NoError(t, echo(c, randomBytes(t, 256<<10)), "relayed")
	require.NotZero(t, relay.carried.Load(), "nothing went through the relay")
	for _, n := range []*testNode{a, b} {
		st := n.m.Peers()[0]
		require.True(t, st.Relayed && st.RxBytes != 0 && st.TxBytes != 0, "status after relayed traffic: %+v", st)
	}

	// Direct: pin the socket path on both sides and cut the relay. The same connection goes on.
	require.NoError(t, a.m.SetPeerPath(b.pub, b.endpoint()))
	require.NoError(t, b.m.SetPeerPath(a.pub, a.endpoint()))
	relay.cut.Store(true)
	for _, n := range []*testNode{a, b} {
		st := n.m.Peers()[0]
		require.True(t, !st.Relayed && st.Endpoint == other(n).endpoint() && st.Pinned, "status after SetPeerPath: %+v", st)
	}
	require.NoError(t, echo(c, randomBytes(t, 256<<10)), "direct")

	// Relayed again through a fresh relay, then back to the published endpoints (now the real
	// ones) with SetPeerRelay(nil).
	relay2 := &memRelay{}
	for _, n := range []*testNode{first, second} {
		require.NoError(t, n.m.SetPeerRelay(other(n).pub, relay2.route(n, other(n))))
	}
	require.NoError(t, echo(c, randomBytes(t, 64<<10)), "relayed again")
	require.NotZero(t, relay2.carried.Load(), "nothing went through the second relay")
	connectAll(t, a, b) // publish the real endpoints
	for _, n := range []*testNode{a, b} {
		require.True(t, n.m.Peers()[0].Relayed, "a change of published endpoints left the relay")
		require.NoError(t, n.m.SetPeerRelay(other(n).pub, nil))
	}
	relay2.cut.Store(true)
	require.NoError(t, echo(c, randomBytes(t, 64<<10)), "unrelayed")
	// The path is learned when wireguard-go next sends to the address the peer's packets came
	// from; after the echo that may be the receiver's delayed ACK, a moment later.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, n := range []*testNode{a, b} {
			st := n.m.Peers()[0]
			assert.True(c, !st.Relayed && st.Endpoint == other(n).endpoint() && !st.Pinned, "status after leaving the relay: %+v", st)
		}
	}, testTimeout, pollEvery)
}

func TestRelayErrors(t *testing.T) {
	a, b := connectedPair(t)
	require.ErrorIs(t, a.m.SetPeerRelay(key.Key{1}, func([]byte) error { return nil }), ErrUnknownPeer)
	require.Error(t, a.m.InjectPacket(b.pub, []byte("not wireguard")), "injected a non-WireGuard datagram")
	// Messages injected for the wrong peer, or from no peer, are dropped, not delivered.
	bogus := make([]byte, sizeInitiation)
	bogus[0] = 1
	require.NoError(t, a.m.InjectPacket(key.Key{2}, bogus), "inject from unknown key")
	require.NoError(t, a.m.Close())
	require.ErrorIs(t, a.m.SetPeerRelay(b.pub, nil), net.ErrClosed, "relay after close")
	require.ErrorIs(t, a.m.InjectPacket(b.pub, bogus), net.ErrClosed, "inject after close")
}
