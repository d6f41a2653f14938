package nexodus

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/nexodus-sdk/nexodus/internal/engine"
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
	// Stopped, when set, says why the coordinator cut the node off (Node.Err has the error);
	// the node then has no peers and Dial and Listen fail.
	Stopped string `json:",omitempty"`
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
	// Traversal is NAT traversal's state for the peer and, while it has no pair, why the last
	// session was lost.
	Traversal     Traversal
	LastHandshake time.Time
	// RxBytes and TxBytes count WireGuard's bytes from and to the peer.
	RxBytes uint64
	TxBytes uint64
	// PathChanges counts how often the path to the peer was found, lost or switched (direct ↔
	// relayed, another address) since the node started: a peer whose count keeps growing has
	// an unstable path.
	PathChanges uint64
}

// TraversalState is where NAT traversal is with a peer.
type TraversalState string

// Traversal states reported in [Peer.Traversal]. A program waiting for the path to settle should
// treat new, offering and checking as undecided: WireGuard may already work over a published
// endpoint meanwhile.
const (
	TraversalNew          TraversalState = "new"          // just learned; no session started yet
	TraversalOffering     TraversalState = "offering"     // this side sent its candidates
	TraversalChecking     TraversalState = "checking"     // checking candidate pairs
	TraversalConnected    TraversalState = "connected"    // a pair was selected
	TraversalDisconnected TraversalState = "disconnected" // the selected pair stopped answering
	TraversalWaiting      TraversalState = "waiting"      // a session failed; another starts after a backoff
	TraversalClosed       TraversalState = "closed"       // the node is shutting down
)

// Traversal is NAT traversal's state for one peer. Reason says, while there is no pair, why the
// last session was lost (e.g. "ICE failed: no candidate pair works"). It marshals to JSON as
// {"state":"waiting","reason":"..."}.
type Traversal struct {
	State  TraversalState `json:"state"`
	Reason string         `json:"reason,omitempty"`
}

// Settled reports whether traversal has decided: it found a pair, lost it, or gave up for now
// ("waiting", whose Reason is then the answer). WireGuard may work over a published endpoint
// before that, while traversal is new, offering or checking.
func (t Traversal) Settled() bool {
	switch t.State {
	case "", TraversalNew, TraversalOffering, TraversalChecking:
		return false
	}
	return true
}

// String returns the state and, if there is one, the reason: "waiting: ICE failed: ...".
func (t Traversal) String() string {
	if t.Reason == "" {
		return string(t.State)
	}
	return string(t.State) + ": " + t.Reason
}

// PeerEventType says what happened to a peer.
type PeerEventType string

// Peer event types delivered to [Node.OnPeerChange].
const (
	PeerAdded   PeerEventType = "added"
	PeerUpdated PeerEventType = "updated"
	PeerRemoved PeerEventType = "removed"
	// PeerPathChanged: NAT traversal chose a new path to the peer, or lost it; Peer shows the
	// path now.
	PeerPathChanged PeerEventType = "path"
)

// PeerEvent tells that a peer joined, changed or left the node's organization.
type PeerEvent struct {
	Type PeerEventType
	Peer Peer
}

var peerEventTypes = map[engine.ChangeKind]PeerEventType{
	engine.PeerAdded:   PeerAdded,
	engine.PeerUpdated: PeerUpdated,
	engine.PeerRemoved: PeerRemoved,
}

// statusOf turns the engine's snapshot into the public status.
func statusOf(s engine.Snapshot) *Status {
	st := &Status{
		DeviceID:         s.Self.ID,
		OrganizationID:   s.Self.OrganizationID,
		Hostname:         s.Self.Hostname,
		PublicKey:        s.PublicKey.String(),
		TunnelIPv4:       s.Self.TunnelIPv4,
		TunnelIPv6:       s.Self.TunnelIPv6,
		LocalAddr:        s.LocalAddr,
		ControlConnected: s.ControlConnected,
		NAT:              NATType(s.NAT),
		ReflexiveAddr:    s.Reflexive,
	}
	if s.Stopped != nil {
		st.Stopped = s.Stopped.Error()
	}
	now := time.Now()
	for _, ps := range s.Peers {
		st.Peers = append(st.Peers, peerStatus(ps, now))
	}
	slices.SortFunc(st.Peers, func(a, b Peer) int {
		if c := strings.Compare(a.Hostname, b.Hostname); c != 0 {
			return c
		}
		return strings.Compare(a.DeviceID, b.DeviceID)
	})
	return st
}

// peerStatus is one peer of a snapshot: the path is direct or relayed only while WireGuard's
// session is fresh, whatever NAT traversal believes.
func peerStatus(ps engine.PeerSnapshot, now time.Time) Peer {
	p := peerOf(ps.Device)
	p.Endpoint = ps.Endpoint
	p.PathSince = ps.PathSince
	p.LastHandshake = ps.LastHandshake
	p.RxBytes, p.TxBytes = ps.RxBytes, ps.TxBytes
	p.PathChanges = ps.PathChanges
	if !ps.LastHandshake.IsZero() && now.Sub(ps.LastHandshake) < handshakeFresh {
		p.Path = PathDirect
		if ps.Relayed {
			p.Path = PathRelayed
		}
	}
	p.Traversal = Traversal{State: TraversalState(ps.ICEState), Reason: ps.ICEReason}
	if ps.ICEState == "" {
		// The tunnel learns peers a moment before NAT traversal does.
		p.Traversal.State = TraversalNew
	}
	if ps.LocalCandidate != "" {
		p.LocalCandidate = CandidateType(ps.LocalCandidate)
		p.RemoteCandidate = CandidateType(ps.RemoteCandidate)
		p.PathSince = ps.PairSince
	}
	return p
}

func peerOf(d engine.Device) Peer {
	return Peer{
		DeviceID:      d.ID,
		Hostname:      d.Hostname,
		PublicKey:     d.PublicKey,
		TunnelIPv4:    d.TunnelIPv4,
		TunnelIPv6:    d.TunnelIPv6,
		ChildPrefixes: d.ChildPrefixes,
		Endpoints:     d.Endpoints,
		Online:        d.Online,
		Path:          PathNone,
	}
}
