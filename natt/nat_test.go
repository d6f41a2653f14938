// nat_test.go tests NAT type detection against STUN servers on real sockets.

package natt

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// detect runs DetectNAT from n against servers, with a deadline.
func detect(t *testing.T, n *testNode, servers ...netip.AddrPort) (NATInfo, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return DetectNAT(ctx, n.sock, servers)
}

func TestDetectNATNone(t *testing.T) {
	a, b := newSTUNServer(t), newSTUNServer(t)
	// Bound to 127.0.0.1, and bound to 0.0.0.0 as mesh binds (then the reflexive address is
	// compared with the interface addresses).
	for _, n := range []*testNode{newTestNode(t), newTestNodeAt(t, net.IPv4zero)} {
		info, err := detect(t, n, a.addr, b.addr)
		require.NoError(t, err)
		assert.Equal(t, NATNone, info.Type, "bound to %v", n.sock.LocalAddrPort())
		assert.Equal(t, n.addr, info.Reflexive)
		assert.Len(t, info.Mappings, 2)
	}
}

func TestDetectNATEndpointIndependent(t *testing.T) {
	const public = "198.51.100.7:40000"
	a, b := newSTUNServer(t), newSTUNServer(t)
	a.setMapping(fixed(public))
	b.setMapping(fixed(public))
	info, err := detect(t, newTestNode(t), a.addr, b.addr)
	require.NoError(t, err)
	assert.Equal(t, NATEndpointIndependent, info.Type)
	assert.False(t, info.Type.Symmetric())
	assert.Equal(t, netip.MustParseAddrPort(public), info.Reflexive)
}

func TestDetectNATSymmetric(t *testing.T) {
	a, b := newSTUNServer(t), newSTUNServer(t)
	a.setMapping(fixed("198.51.100.7:40000"))
	b.setMapping(fixed("198.51.100.7:40001"))
	info, err := detect(t, newTestNode(t), a.addr, b.addr)
	require.NoError(t, err)
	assert.Equal(t, NATSymmetric, info.Type)
	assert.True(t, info.Type.Symmetric())
}

func TestDetectNATNotEnoughServers(t *testing.T) {
	a, b := newSTUNServer(t), newSTUNServer(t)
	b.setSilent(true)
	n := newTestNode(t)
	_, err := detect(t, n, a.addr, a.addr)
	require.ErrorIs(t, err, ErrNotEnoughServers, "one distinct server")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := detectNAT(ctx, n.sock, []netip.AddrPort{a.addr, b.addr}, time.Millisecond, localAddrs)
	require.ErrorIs(t, err, ErrNotEnoughServers, "one answer")
	require.ErrorIs(t, err, ErrSTUNTimeout, "one answer")
	assert.Equal(t, NATUnknown, info.Type)
	assert.Equal(t, n.addr, info.Reflexive)
}

func TestIsLocalUnspecified(t *testing.T) {
	locals := func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("192.0.2.5")} }
	local := netip.MustParseAddrPort("0.0.0.0:5000")
	assert.True(t, isLocal(netip.MustParseAddrPort("192.0.2.5:5000"), local, locals), "own interface address")
	assert.False(t, isLocal(netip.MustParseAddrPort("192.0.2.5:5001"), local, locals), "other port")
	assert.False(t, isLocal(netip.MustParseAddrPort("198.51.100.1:5000"), local, locals), "public address")
}
