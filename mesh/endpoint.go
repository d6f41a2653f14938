package mesh

// This file holds the Bind's conn.Endpoint: the three kinds of endpoint, the pseudo addresses
// of relayed packets, and the bounded caches that hand out endpoints by source address.

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/nexodus-sdk/nexodus/key"
	"golang.zx2c4.com/wireguard/conn"
)

// Bounds of the endpoint caches. They only limit memory under a flood of packets from many
// source addresses; a normal mesh stays far below them.
const (
	maxPlainEndpoints  = 1024 // endpoints for packets that belong to no known peer
	maxObservedPerPeer = 16   // per peer: source addresses seen but not (yet) its path
)

// endpoint implements conn.Endpoint. There are three kinds:
//   - key endpoint: peer set, src invalid — sends follow the peer's path;
//   - observed endpoint: peer and src set — a packet of the peer arrived from src, which is not
//     its current path; sending through it means wireguard-go accepted that packet;
//   - plain endpoint: peer nil — a packet that belongs to no known peer.
type endpoint struct {
	peer  *peerState
	src   netip.AddrPort
	epoch atomic.Uint64 // observed endpoints: the path epoch when a packet last arrived from src
}

var _ conn.Endpoint = (*endpoint)(nil)

func (e *endpoint) dst() netip.AddrPort {
	if e.src.IsValid() {
		return e.src
	}
	if e.peer.path.relayed() {
		return relayAddr(e.peer.key)
	}
	return e.peer.path.current()
}

func (e *endpoint) ClearSrc()           {}
func (e *endpoint) SrcToString() string { return "" }
func (e *endpoint) SrcIP() netip.Addr   { return netip.Addr{} }
func (e *endpoint) DstIP() netip.Addr   { return e.dst().Addr() }

func (e *endpoint) DstToString() string {
	if e.src.IsValid() {
		return e.src.String()
	}
	return e.peer.hex
}

// DstToBytes is used by wireguard-go for the MAC2 cookie, which binds a cookie to the source
// address of a handshake message.
func (e *endpoint) DstToBytes() []byte {
	b, _ := e.dst().MarshalBinary()
	return b
}

// endpointCache hands out one endpoint per source address: observed endpoints of one peer, or
// (peer nil) plain endpoints. wireguard-go compares endpoints by identity, so the same source
// must get the same endpoint while it is in use. The cache is bounded; when full it starts
// over, which costs no more than a fresh endpoint for the addresses still in use.
type endpointCache struct {
	peer *peerState // the peer of every endpoint handed out; nil for plain endpoints
	max  int

	mu sync.Mutex
	m  map[netip.AddrPort]*endpoint
}

func newEndpointCache(peer *peerState, max int) endpointCache {
	return endpointCache{peer: peer, max: max, m: make(map[netip.AddrPort]*endpoint)}
}

// get returns the endpoint for src, made on first use.
func (c *endpointCache) get(src netip.AddrPort) *endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[src]; e != nil {
		return e
	}
	if len(c.m) >= c.max {
		clear(c.m)
	}
	e := &endpoint{peer: c.peer, src: src}
	c.m[src] = e
	return e
}

// relayPrefix is where the source addresses of relayed packets come from: the IPv6 discard-only
// prefix 100::/64 (RFC 6666), which no packet on the socket can come from. A packet handed over
// by InjectPacket gets the source relayAddr(peer key), with port 0, so that every step of the
// receive path (holding initiations, replaying them) knows it came by relay and from whom.
var relayPrefix = [8]byte{0x01, 0x00}

// relayAddr is the pseudo source address of packets of the peer with this key that arrived by
// relay.
func relayAddr(pub key.Key) netip.AddrPort {
	var a [16]byte
	copy(a[:8], relayPrefix[:])
	copy(a[8:], pub[:8])
	return netip.AddrPortFrom(netip.AddrFrom16(a), 0)
}

// isRelayAddr reports whether src is a relayAddr.
func isRelayAddr(src netip.AddrPort) bool {
	if src.Port() != 0 || !src.Addr().Is6() || src.Addr().Is4In6() {
		return false
	}
	a := src.Addr().As16()
	return [8]byte(a[:8]) == relayPrefix
}

func unmapAddrPort(ap netip.AddrPort) netip.AddrPort {
	if ap.Addr().Is4In6() {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ap
}
