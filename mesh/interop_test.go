package mesh

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestInteropWithStockWireGuard runs bulk TCP both ways between a Mesh and a stock wireguard-go
// node (StdNetBind and tun/netstack, which verifies every checksum and neither segments nor
// coalesces). The Mesh's segmentation offload must produce packets any stack accepts, and its
// receive path must take what any stack sends.
func TestInteropWithStockWireGuard(t *testing.T) {
	m := newTestNode(t, 1)
	stockAddr := netip.MustParseAddr("100.64.0.2")
	s := newStockNode(t, stockAddr)
	t.Cleanup(func() { s.Close() })
	err := m.m.SetPeers(context.Background(), []Peer{{
		PublicKey:  s.priv.Public(),
		AllowedIPs: []netip.Prefix{netip.PrefixFrom(stockAddr, 32)},
		Endpoints:  []netip.AddrPort{netip.AddrPortFrom(loopback, s.port)},
	}})
	require.NoError(t, err)
	cfg := fmt.Sprintf("public_key=%s\nendpoint=%s\nallowed_ip=%s/32\n", m.pub.Hex(), m.endpoint(), m.v4)
	require.NoError(t, s.dev.IpcSet(cfg))
	mesh := meshBenchNode{m.m, m.v4}

	// Each side dials the other and sends 8 MiB while the other sends 8 MiB back.
	const total = 8 << 20
	for _, dir := range []struct {
		name           string
		client, server benchNode
	}{{"mesh dials stock", mesh, s}, {"stock dials mesh", s, mesh}} {
		c, srv := tcpPair(t, dir.client, dir.server)
		// A packet the other stack refuses (a bad checksum) stalls the stream: fail, not hang.
		deadline := time.Now().Add(testTimeout)
		c.SetDeadline(deadline)
		srv.SetDeadline(deadline)
		errs := make(chan error, 4)
		go func() { errs <- sendStream(c, total) }()
		go func() { errs <- sendStream(srv, total) }()
		go func() { errs <- checkStream(c, total) }()
		go func() { errs <- checkStream(srv, total) }()
		for range 4 {
			require.NoError(t, <-errs, dir.name)
		}
	}
}
