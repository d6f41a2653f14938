// path.go holds what a peer's path is: the candidate pair ICE selected (Path), the candidate
// types, and the rule that decides when a newly selected pair is news for OnPath.

package natt

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/pion/ice/v4"
)

// CandidateType is the kind of an ICE candidate.
type CandidateType string

// Candidate types.
const (
	CandidateHost  CandidateType = "host"  // an address of a local interface
	CandidateSrflx CandidateType = "srflx" // server-reflexive: the NAT's public mapping, learned by STUN
	CandidatePrflx CandidateType = "prflx" // peer-reflexive: learned from a connectivity check
	CandidateRelay CandidateType = "relay" // relayed through a TURN server
)

func candidateType(t ice.CandidateType) CandidateType {
	switch t {
	case ice.CandidateTypeHost:
		return CandidateHost
	case ice.CandidateTypeServerReflexive:
		return CandidateSrflx
	case ice.CandidateTypePeerReflexive:
		return CandidatePrflx
	case ice.CandidateTypeRelay:
		return CandidateRelay
	default:
		return CandidateType(t.String())
	}
}

// Path is the candidate pair ICE selected for a peer. The zero Path (Valid false) means no path.
type Path struct {
	// Local is the local candidate's address: the shared socket's address for a host candidate,
	// the NAT's public mapping for srflx, the TURN allocation for relay.
	Local netip.AddrPort
	// Remote is where the peer's traffic goes: for a direct pair (local type host, srflx or
	// prflx) WireGuard sends to Remote on the shared socket.
	Remote     netip.AddrPort
	LocalType  CandidateType
	RemoteType CandidateType
	Since      time.Time // when the pair was selected

	// Send writes one datagram (a WireGuard message) to the peer through the selected pair:
	// through the TURN allocation when the local candidate is relayed, from the shared socket
	// to the peer's allocation when only the remote one is. It is set for relayed paths only
	// (nil for direct ones, whose traffic goes straight to Remote on the shared socket) and
	// works until the session ends; it is safe for concurrent use and does not keep b. What
	// the peer sends back over a relayed pair arrives through Config.OnRelayPacket.
	Send func(b []byte) error

	session string // the ICE session that selected the pair
}

// Valid reports whether p is a path (not the "no path" zero value).
func (p Path) Valid() bool { return p.Remote.IsValid() }

// Relayed reports whether the path goes through a TURN relay on either side.
func (p Path) Relayed() bool { return p.LocalType == CandidateRelay || p.RemoteType == CandidateRelay }

func (p Path) String() string {
	if !p.Valid() {
		return "none"
	}
	return fmt.Sprintf("%s %v -> %s %v", p.LocalType, p.Local, p.RemoteType, p.Remote)
}

func (p Path) samePair(o Path) bool {
	return p.Local == o.Local && p.Remote == o.Remote && p.LocalType == o.LocalType && p.RemoteType == o.RemoteType
}

// sameRoute reports whether p and o carry the peer's traffic the same way: the same pair, and
// for a relayed pair the same session (its Send goes through that session's agent).
func (p Path) sameRoute(o Path) bool {
	if !p.samePair(o) || (p.Send == nil) != (o.Send == nil) {
		return false
	}
	return p.Send == nil || p.session == o.session
}

// nextPath folds a pair that a session selected (or the zero Path: the path is lost) into the
// path last reported. It returns the path to remember and whether OnPath must hear of it. The
// same direct pair found by a new session is no news — WireGuard keeps sending to the same
// address — but belongs to that session from now on.
func nextPath(old, cur Path) (Path, bool) {
	switch {
	case !old.Valid() && !cur.Valid():
		return old, false
	case old.Valid() && cur.Valid() && old.sameRoute(cur):
		old.session = cur.session
		return old, false
	}
	return cur, true
}

// pathOf is the Path of a pair of pion candidates, selected now.
func pathOf(local, remote ice.Candidate) Path {
	addr := func(c ice.Candidate) netip.AddrPort {
		ip, err := netip.ParseAddr(c.Address())
		if err != nil || c.Port() <= 0 || c.Port() > 65535 {
			return netip.AddrPort{}
		}
		return netip.AddrPortFrom(ip.Unmap(), uint16(c.Port()))
	}
	return Path{
		Local:      addr(local),
		Remote:     addr(remote),
		LocalType:  candidateType(local.Type()),
		RemoteType: candidateType(remote.Type()),
		Since:      time.Now(),
	}
}
