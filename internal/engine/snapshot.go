package engine

import (
	"net/netip"
	"time"

	"github.com/nexodus-sdk/nexodus/key"
	"github.com/nexodus-sdk/nexodus/mesh"
	"github.com/nexodus-sdk/nexodus/natt"
)

// Snapshot is the engine's state at one moment, in plain values for the facade.
type Snapshot struct {
	Self             Device
	PublicKey        key.Key
	LocalAddr        netip.AddrPort
	ControlConnected bool
	// Stopped is why the coordinator cut the node off (wrapping ErrCutOff); nil while it runs.
	Stopped error
	// NAT is "unknown", "none", "cone" or "symmetric"; Reflexive the public mapping STUN saw.
	NAT       string
	Reflexive netip.AddrPort
	Peers     []PeerSnapshot
}

// PeerSnapshot is one peer: its record, WireGuard's view and NAT traversal's.
type PeerSnapshot struct {
	Device Device
	// WireGuard: where packets go now (zero when nowhere), whether through a relay, the last
	// handshake and the traffic counters.
	Endpoint      netip.AddrPort
	Relayed       bool
	LastHandshake time.Time
	PathSince     time.Time
	RxBytes       uint64
	TxBytes       uint64
	// PathChanges counts the paths NAT traversal found, lost or switched for the peer.
	PathChanges uint64
	// NAT traversal: the state ("" before it has a session for the peer) and, while it has no
	// pair, why the last one was lost; the kinds of the pair's two ends ("" without a pair) and
	// when it was chosen.
	ICEState        string
	ICEReason       string
	LocalCandidate  string
	RemoteCandidate string
	PairSince       time.Time
}

// Snapshot returns the node's state now.
func (e *Engine) Snapshot() Snapshot {
	e.mu.RLock()
	defer e.mu.RUnlock()
	nat := e.dp.natInfo()
	s := Snapshot{
		Self:             ParseDevice(e.peers.Self),
		PublicKey:        e.pubKey,
		LocalAddr:        e.dp.mesh.LocalAddr(),
		ControlConnected: e.connected && !e.peers.Removed,
		Stopped:          e.stopErr,
		NAT:              natName(nat.Type),
		Reflexive:        nat.Reflexive,
	}
	wg := map[key.Key]mesh.PeerStatus{}
	for _, ps := range e.dp.mesh.Peers() {
		wg[ps.PublicKey] = ps
	}
	ice := e.dp.traversal()
	for _, d := range e.peers.Peers {
		p := PeerSnapshot{Device: ParseDevice(d), PathChanges: e.dp.pathChangesOf(d.ID)}
		if k, err := key.Parse(d.PublicKey); err == nil {
			if ps, ok := wg[k]; ok {
				p.Endpoint, p.Relayed = ps.Endpoint, ps.Relayed
				p.LastHandshake, p.PathSince = ps.LastHandshake, ps.PathSince
				p.RxBytes, p.TxBytes = ps.RxBytes, ps.TxBytes
			}
		}
		if ps, ok := ice[d.ID]; ok {
			p.ICEState = string(ps.State)
			if ps.Path.Valid() {
				if p.Relayed && !p.Endpoint.IsValid() {
					// WireGuard's packets go through the relay: show the relay's address (our
					// allocation, or the peer's when only its end is relayed).
					p.Endpoint = ps.Path.Remote
					if ps.Path.LocalType == natt.CandidateRelay {
						p.Endpoint = ps.Path.Local
					}
				}
				p.LocalCandidate = localCandidateType(ps.Path.LocalType)
				p.RemoteCandidate = string(ps.Path.RemoteType)
				p.PairSince = ps.Path.Since
			} else {
				p.ICEReason = ps.Reason
			}
		}
		s.Peers = append(s.Peers, p)
	}
	return s
}

// localCandidateType reports the local end of a pair as RFC 8445 (6.1.2.4) pairs it: a
// server-reflexive candidate is replaced by its base. Every candidate but a relayed one sends
// from the node's one socket, so pion's "srflx" local end is the host candidate in fact.
func localCandidateType(t natt.CandidateType) string {
	if t == natt.CandidateSrflx {
		return string(natt.CandidateHost)
	}
	return string(t)
}

func natName(t natt.NATType) string {
	switch t {
	case natt.NATNone:
		return "none"
	case natt.NATEndpointIndependent:
		return "cone"
	case natt.NATSymmetric:
		return "symmetric"
	default:
		return "unknown"
	}
}
