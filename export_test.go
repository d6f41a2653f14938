package nexodus

import (
	"net/netip"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/mesh"
	"github.com/nexodus-sdk/nexodus/natt"
)

// SetRelayOnly makes every path of n go through a TURN relay, so that tests on one machine,
// where every direct path works, can exercise relayed paths.
func SetRelayOnly(n *Node) { n.relayOnly = true }

// TraversalString is how Peer.Traversal shows NAT traversal's state (ok false: no state yet).
func TraversalString(st natt.PathStatus, ok bool) string { return traversalString(st, ok) }

// SetReaddressHook makes f run while n rebuilds its tunnel after an address change, between
// closing the old data plane and building the new one.
func SetReaddressHook(n *Node, f func()) { n.testHookReaddress = f }

// PublishedEndpoints is the endpoint list a node publishes for these interface addresses.
func PublishedEndpoints(addrs []netip.Addr, port uint16, reflexive netip.AddrPort) []api.Endpoint {
	return publishedEndpoints(addrs, port, reflexive)
}

// DevicePeer is what a node makes of a device record from the coordinator: the WireGuard peer
// (an error when the record is unusable) and the Peer its Status shows.
func DevicePeer(d api.Device) (mesh.Peer, Peer, error) {
	mp, err := meshPeer(d)
	return mp, peerFromDevice(d), err
}
