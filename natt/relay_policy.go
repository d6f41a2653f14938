// relay_policy.go holds when a session gathers relayed candidates (makes TURN allocations):
// the hints the root gives (this host's NAT type, the peers' symmetric NATs), the pure rules that
// weigh them (whether to allocate, how long pion waits before it nominates a relayed pair, when
// to look for a direct pair while relayed), and what a peer does when they change — start a
// session with a relay, release an allocation a direct path does not need, look for a direct
// path while relayed. The fast fallback of a session that finds no direct pair is in
// relay_fallback.go.

package natt

import "time"

const (
	// relayGrace is how long a session that gathered relayed candidates from the start (a relay
	// was likely needed) lets its direct pairs validate before pion may nominate a relayed one:
	// a direct pair between reachable peers validates within a round trip.
	relayGrace = 300 * time.Millisecond
	// earlyUpgradeAfter is when the first look for a direct pair starts once a peer is relayed
	// (the later ones come every UpgradeInterval): a fast fallback or a short relay wait may
	// have chosen the relay where a direct pair needed a moment longer.
	earlyUpgradeAfter = 5 * time.Second
)

// SetLocalNAT tells the Manager what this host's NAT check found (a Monitor's result), which
// decides whether its sessions gather relayed candidates. Behind a symmetric NAT, or while the
// type is unknown (not checked yet, no STUN server answered — UDP may be blocked — or a single
// server could not tell), every session does: direct paths are unlikely or unproven. Behind an
// endpoint-independent NAT or none, only sessions with peers that need a relay do (see
// SetPeerSymmetric), and sessions with a peer whose previous session found no direct pair
// (it failed, or heard nothing from the peer in time: relay_fallback.go).
// Allocating for every peer would load the relay with O(peers) allocations per device and let
// a per-credential quota starve the one peer that needs it. A session that is already
// connected directly keeps its path; one that holds an allocation it no longer needs is
// replaced by one without, its direct path staying in use.
func (m *Manager) SetLocalNAT(t NATType) {
	m.natMu.Lock()
	changed := m.localNAT != t
	m.localNAT = t
	m.natMu.Unlock()
	if changed {
		m.eachPeer((*peer).reconsider)
	}
}

// SetPeerSymmetric records whether a peer reported (through the coordinator) being behind a
// symmetric NAT: sessions with such a peer gather relayed candidates. It may be called before
// AddPeer; RemovePeer forgets it.
func (m *Manager) SetPeerSymmetric(peerID string, symmetric bool) {
	m.natMu.Lock()
	changed := m.symPeers[peerID] != symmetric
	if symmetric {
		m.symPeers[peerID] = true
	} else {
		delete(m.symPeers, peerID)
	}
	m.natMu.Unlock()
	if !changed {
		return
	}
	m.mu.Lock()
	p := m.peers[peerID]
	m.mu.Unlock()
	if p != nil {
		p.reconsider()
	}
}

// natHints returns this host's NAT type and whether peerID reported a symmetric NAT.
func (m *Manager) natHints(peerID string) (local NATType, peerSymmetric bool) {
	m.natMu.Lock()
	defer m.natMu.Unlock()
	return m.localNAT, m.symPeers[peerID]
}

// relayNeed is everything that decides whether a new session gathers relayed candidates.
type relayNeed struct {
	turn      bool // TURN servers are configured
	relayOnly bool // Config.RelayOnly
	// upgrade: the session looks for a direct pair while a kept session's allocation carries
	// the relayed path.
	upgrade bool
	// directFailed: a session without relayed candidates failed, or heard nothing from the peer
	// in time (relay_fallback.go), and none has connected directly since.
	directFailed  bool
	localNAT      NATType
	peerSymmetric bool
}

// wanted reports whether a relay is likely needed, and why. An upgrade session never gathers
// relayed candidates, so that a relayed peer does not allocate again at every look.
func (n relayNeed) wanted() (bool, string) {
	switch {
	case !n.turn:
		return false, ""
	case n.relayOnly:
		return true, "relay only"
	case n.upgrade:
		return false, ""
	case n.directFailed:
		return true, "the last session found no direct pair"
	case n.localNAT == NATSymmetric:
		return true, "this host is behind a symmetric NAT"
	case n.localNAT == NATUnknown:
		return true, "this host's NAT type is unknown"
	case n.peerSymmetric:
		return true, "the peer is behind a symmetric NAT"
	}
	return false, ""
}

// nominationWait is how long pion waits, in a session that gathers relayed candidates, before
// it nominates a relayed pair: none when nothing better can come (relay only) or the last
// direct attempt found nothing (the relay is the point of this session), relayGrace otherwise.
// A direct pair that validates later takes over through an upgrade look.
func (n relayNeed) nominationWait() time.Duration {
	if n.relayOnly || n.directFailed {
		return 0
	}
	return relayGrace
}

// relayNeed collects what decides a new session's relay use.
func (p *peer) relayNeed(upgrade bool) relayNeed {
	local, sym := p.m.natHints(p.id)
	return relayNeed{
		turn:          len(p.m.turnURLs()) > 0,
		relayOnly:     p.m.relayOnly.Load(),
		upgrade:       upgrade,
		directFailed:  p.directFailed,
		localNAT:      local,
		peerSymmetric: sym,
	}
}

// wantRelay decides whether a new session with the peer gathers relayed candidates.
func (p *peer) wantRelay(upgrade bool) (bool, string) { return p.relayNeed(upgrade).wanted() }

// replaceForRelay reports whether session s (nil: none) must give way at once to one with
// relayed candidates, now that a relay is wanted: it has none and has not begun its checks (a
// session already checking goes on: if it fails, the next one gathers relayed candidates), and
// no kept session carries a relayed path.
func replaceForRelay(want, kept bool, s *session) bool {
	return want && !kept && (s == nil || !s.relay && !s.started)
}

// unneededAllocation reports whether session s gathered relayed candidates but carries a
// direct path (the path last reported), and no relay is wanted.
func unneededAllocation(s *session, path Path, relayOnly, want bool) bool {
	if s == nil || !s.relay || relayOnly || !path.Valid() || path.Relayed() || path.session != s.id {
		return false
	}
	return !want
}

// reconsider asks the actor to look again at whether its session should gather relayed
// candidates (this host's or the peer's NAT type, or the TURN servers, changed). It does not
// block.
func (p *peer) reconsider() {
	select {
	case p.recheck <- struct{}{}:
	default:
	}
}

// onReconsider follows a change of what decides relay gathering: a session that needs a relay
// now is replaced at once (replaceForRelay); a direct session holding an allocation it no
// longer needs is replaced later (armRelease).
func (p *peer) onReconsider() {
	want, why := p.wantRelay(false)
	switch {
	case replaceForRelay(want, p.keep != nil, p.sess):
		p.log.Info("a relay is likely needed: starting a session with relayed candidates", "why", why)
		p.attempt = 0
		p.offer()
	case !want && p.sess.live():
		p.armRelease()
	}
}

// armRelease schedules the replacement of a session that connected directly while holding TURN
// allocations no longer wanted (this host's NAT type was not known yet when it started, say):
// a direct path outlives its session, so a new session without relayed candidates takes over
// the pair and the allocations go.
func (p *peer) armRelease() {
	if p.holdsUnneededAllocation() {
		p.releaseTimer.Reset(releaseAfter)
	}
}

// release replaces the session armRelease found holding allocations it does not need, if that
// is still so.
func (p *peer) release() {
	if !p.holdsUnneededAllocation() {
		return
	}
	p.log.Info("direct path: replacing the session to release its relay allocation", "session", p.sess.id)
	p.attempt = 0
	p.offer()
}

func (p *peer) holdsUnneededAllocation() bool {
	want, _ := p.wantRelay(false)
	return unneededAllocation(p.sess, p.path, p.m.relayOnly.Load(), want)
}

// upgradeDelay is when the next look for a direct pair starts, after looks earlier ones since
// the path became relayed: the first early, the others every interval (UpgradeInterval).
func upgradeDelay(looks int, interval time.Duration) time.Duration {
	if looks == 0 {
		return min(earlyUpgradeAfter, interval)
	}
	return interval
}

// armUpgrade schedules the next look for a direct pair while the path is relayed. Only the
// controlling side does it, so that the two sides do not offer at once.
func (p *peer) armUpgrade() {
	relayed := p.path.Valid() && p.path.Relayed()
	switch {
	case relayed && p.controlling && p.timerKind == timerNone:
		p.setTimer(timerUpgrade, jitter(upgradeDelay(p.upgradeLooks, p.m.cfg.UpgradeInterval)))
	case !relayed && p.timerKind == timerUpgrade:
		p.clearTimer()
	}
}

// onUpgradeTimer starts the look for a direct pair armUpgrade scheduled, if the path is still
// relayed through the current session.
func (p *peer) onUpgradeTimer() {
	s := p.sess
	if s == nil || !p.path.Valid() || !p.path.Relayed() || p.path.session != s.id {
		return
	}
	p.log.Info("relayed: looking for a direct path", "look", p.upgradeLooks+1)
	p.upgradeLooks++
	p.attempt = 0
	p.offerSession(true)
}

// failedDirect records that session s, which reached ICE's failed state, had no relayed
// candidates while relays were there: the next sessions gather them.
func (p *peer) failedDirect(s *session) {
	if !s.relay && !s.upgrade && len(p.m.turnURLs()) > 0 {
		p.directFailed = true
	}
}
