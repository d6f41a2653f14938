package mesh

import (
	"net"
	"net/netip"
	"testing"

	"github.com/nexodus-sdk/nexodus/key"
	"github.com/stretchr/testify/require"
	"golang.zx2c4.com/wireguard/conn"
)

// TestBindOpenClose checks the Bind's life cycle as wireguard-go drives it: Close before every
// Open (also the first), and Open again after Close. Close is the one Close in the package that
// returns nil when already closed: conn.Bind's contract is a reopenable socket.
func TestBindOpenClose(t *testing.T) {
	b := newBind(newCaptureIO(), nil, key.Key{1}, nil, discardLogger())
	require.NoError(t, b.Close(), "close before the first open")
	for range 2 {
		fns, _, err := b.Open(0)
		require.NoError(t, err)
		require.Len(t, fns, 2)
		_, _, err = b.Open(0)
		require.ErrorIs(t, err, conn.ErrBindAlreadyOpen)
		require.NoError(t, b.Close())
		require.NoError(t, b.Close(), "close of a closed bind")
		bufs, sizes := receiveBuffers(1)
		eps := make([]conn.Endpoint, 1)
		for _, fn := range fns {
			_, err := fn(bufs, sizes, eps)
			require.ErrorIs(t, err, net.ErrClosed, "ReceiveFunc after Close")
		}
	}
}

func TestEndpointCache(t *testing.T) {
	b := newBind(newCaptureIO(), nil, key.Key{1}, nil, discardLogger())
	src := ap("192.0.2.1:1")
	e := b.plain.get(src)
	require.Nil(t, e.peer)
	require.Same(t, e, b.plain.get(src), "same source, other endpoint")
	ep, err := b.ParseEndpoint("[::ffff:192.0.2.1]:1")
	require.NoError(t, err)
	require.Same(t, e, ep, "ParseEndpoint of a v4-mapped address")
	for i := range maxPlainEndpoints {
		b.plain.get(netip.AddrPortFrom(src.Addr(), uint16(2+i)))
	}
	require.LessOrEqual(t, len(b.plain.m), maxPlainEndpoints, "plain endpoints beyond the bound")

	pub := key.Key{2}
	p, created, _ := b.upsertPeer(pub, nil)
	require.True(t, created)
	ep, err = b.ParseEndpoint(pub.Hex())
	require.NoError(t, err)
	require.Same(t, p.ep, ep, "key endpoint")
	require.Equal(t, pub.Hex(), ep.DstToString())
	_, err = b.ParseEndpoint(key.Key{3}.Hex())
	require.Error(t, err, "endpoint of an unknown peer")
	o := p.observedEndpoint(src)
	require.Same(t, p, o.peer)
	require.Equal(t, src, o.dst())
	require.Same(t, o, p.observedEndpoint(src))
}

// TestPeerTableIndices checks that a peer's handshake indices map to it while they are among
// its last indicesPerPeer, and not at all once it is removed.
func TestPeerTableIndices(t *testing.T) {
	tab := newPeerTable()
	p, created := tab.upsert(key.Key{1})
	require.True(t, created)
	q, _ := tab.upsert(key.Key{2})
	for idx := range uint32(indicesPerPeer + 5) {
		tab.rememberIndex(p, 100+idx)
	}
	tab.rememberIndex(q, 1)
	for idx := range uint32(indicesPerPeer + 5) {
		want := p
		if idx < 5 {
			want = nil // displaced
		}
		require.Same(t, want, tab.byIdx(100+idx, nil), "index %d", 100+idx)
	}
	var cache indexCache
	require.Same(t, q, tab.byIdx(1, &cache))
	tab.remove(key.Key{2})
	require.Same(t, q, tab.byIdx(1, &cache), "the batch's cache outlives a removal")
	require.Nil(t, tab.byIdx(1, nil), "index of a removed peer")
	tab.rememberIndex(q, 2) // q was removed meanwhile
	require.Nil(t, tab.byIdx(2, nil), "index remembered for a removed peer")
	again, created := tab.upsert(key.Key{1})
	require.False(t, created)
	require.Same(t, p, again)
}
