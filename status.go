package nexodus

import (
	"net/netip"
	"time"
)

// PathType says how traffic reaches a peer.
type PathType string

// Path types reported in [Peer.Path].
const (
	// PathNone: no working path yet (no handshake, or the last one is too old).
	PathNone PathType = "none"
	// PathDirect: WireGuard traffic goes straight to the peer's address.
	PathDirect PathType = "direct"
	// PathRelayed: traffic goes through a relay (the relay sees only ciphertext).
	PathRelayed PathType = "relayed"
)

// CandidateType says what kind of address one end of a path is (ICE candidate types).
type CandidateType string

// Candidate types reported in [Peer.LocalCandidate] and [Peer.RemoteCandidate].
const (
	CandidateHost      CandidateType = "host"  // an interface address: same LAN or no NAT
	CandidateReflexive CandidateType = "srflx" // the address a NAT maps to, learned by STUN
	CandidatePeerRefl  CandidateType = "prflx" // a mapping learned from the peer's checks
	CandidateRelay     CandidateType = "relay" // an allocation on a TURN relay
)

// NATType is what the node learned of the NAT in front of it.
type NATType string

// NAT types reported in [Status.NAT].
const (
	NATUnknown   NATType = "unknown"   // not measured (no STUN servers, or no answer yet)
	NATNone      NATType = "none"      // the node's address is public
	NATCone      NATType = "cone"      // endpoint-independent mapping: direct paths work
	NATSymmetric NATType = "symmetric" // mapping per destination: direct paths rarely work
)

// A handshake older than this means the session has lapsed (WireGuard rekeys every 2 minutes
// while traffic flows and keepalives keep idle sessions fresh).
const handshakeFresh = 3 * time.Minute

// Status is a snapshot of a node.
type Status struct {
	DeviceID       string
	OrganizationID string
	Hostname       string
	PublicKey      string // WireGuard public key, standard base64
	TunnelIPv4     netip.Addr
	TunnelIPv6     netip.Addr
	// LocalAddr is the node's UDP socket, shared by WireGuard and NAT traversal.
	LocalAddr netip.AddrPort
	// ControlConnected reports whether the event stream from the coordinator is up. While it is
	// down the data plane keeps working with the last known peers.
	ControlConnected bool
	// NAT is the kind of NAT in front of the node, re-checked while it runs; ReflexiveAddr is
	// the node's UDP address as STUN servers see it (zero when unknown).
	NAT           NATType
	ReflexiveAddr netip.AddrPort
	Peers         []Peer
}

// Peer is another device of the node's organization as the node sees it.
type Peer struct {
	DeviceID   string
	Hostname   string
	PublicKey  string
	TunnelIPv4 netip.Addr
	TunnelIPv6 netip.Addr
	// ChildPrefixes are networks the peer routes for.
	ChildPrefixes []netip.Prefix
	// Endpoints are the UDP addresses the peer published.
	Endpoints []netip.AddrPort
	// Online is the coordinator's view: the peer's event stream is connected.
	Online bool
	// Path is how traffic reaches the peer now, Endpoint the address it goes to.
	Path     PathType
	Endpoint netip.AddrPort
	// LocalCandidate and RemoteCandidate are the kinds of the two ends of the path NAT
	// traversal chose (empty before it chose one), and PathSince is when it chose it.
	LocalCandidate  CandidateType
	RemoteCandidate CandidateType
	PathSince       time.Time
	// Traversal is NAT traversal's state for the peer and, when it has no pair, why the last
	// session was lost: "new" (just learned, no session started yet), "offering", "checking"
	// (still deciding), "connected", "disconnected", or "waiting" (a session failed; a new one
	// starts after a backoff), e.g. "waiting: ICE failed: no candidate pair works". A program
	// waiting for the path to settle should treat new, offering and checking as undecided:
	// WireGuard may already work over a published endpoint meanwhile.
	Traversal     string
	LastHandshake time.Time
	RxBytes       uint64
	TxBytes       uint64
}

// PeerEventType says what happened to a peer.
type PeerEventType string

// Peer event types delivered to [Node.OnPeerChange].
const (
	PeerAdded   PeerEventType = "added"
	PeerUpdated PeerEventType = "updated"
	PeerRemoved PeerEventType = "removed"
)

// PeerEvent tells that a peer joined, changed or left the node's organization.
type PeerEvent struct {
	Type PeerEventType
	Peer Peer
}
