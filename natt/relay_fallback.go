// relay_fallback.go holds the fast fallback to the relay: a session without relayed candidates
// is looked at shortly after its checks begin, and one whose direct pairs have heard nothing
// from the peer is replaced by a session that gathers relayed candidates, instead of waiting for
// ICE to fail (DisconnectedTimeout + FailedTimeout, then a restart). The looks are a pure rule
// (fallbackLook) over what pion's pair statistics say (directProgress).

package natt

import (
	"time"

	"github.com/pion/ice/v4"
)

const (
	// noProgressAfter is how long a session's direct pairs may go without hearing from the peer
	// before it falls back to the relay. Between reachable peers the first check is answered
	// within a round trip of the two (the peer's own first checks open its NAT for ours).
	noProgressAfter = 300 * time.Millisecond
	// directGrace bounds how long a session without relayed candidates may check without a
	// pair, even with progress (the peer heard from, no pair valid: one-way filtering, say),
	// before it falls back; and how long a look for a direct pair while a kept session carries
	// the relayed path may go without progress before it gives up.
	directGrace = 1500 * time.Millisecond
)

// fallbackLook decides, elapsed after a session's checks began (with a remote candidate) and
// while it has no pair, whether it falls back now, and if not when to look again (0: no more
// looks; pion's own timeouts decide). progress: a direct pair heard from the peer. kept: a kept
// session's relayed pair carries the traffic meanwhile (an upgrade attempt, a restart while
// relayed), so there is no hurry, and falling back means giving up and staying relayed.
func fallbackLook(elapsed time.Duration, progress, kept bool) (now bool, again time.Duration) {
	switch {
	case kept && elapsed < directGrace:
		return false, directGrace - elapsed
	case kept:
		return !progress, 0
	case elapsed < noProgressAfter:
		return false, noProgressAfter - elapsed
	case !progress:
		return true, 0
	case elapsed < directGrace:
		return false, directGrace - elapsed
	}
	return true, 0
}

// directProgress reports whether any pair heard from the peer: a response to one of our checks,
// or a check of the peer's (which pion authenticates).
func directProgress(stats []ice.CandidatePairStats) bool {
	for _, st := range stats {
		if st.ResponsesReceived > 0 || st.RequestsReceived > 0 {
			return true
		}
	}
	return false
}

// fallbackEligible reports whether session s (the current one) is one the looks apply to: it
// checks without relayed candidates, has no pair yet, and a relay could help.
func (p *peer) fallbackEligible(s *session) bool {
	return s != nil && s == p.sess && s.started && !s.relay && !s.live() &&
		s.state != ice.ConnectionStateFailed && !p.m.relayOnly.Load() && len(p.m.turnURLs()) > 0
}

// armFallback schedules a look at session s after d.
func (p *peer) armFallback(s *session, d time.Duration) {
	p.fallbackFor = s.id
	p.fallbackTimer.Reset(d)
}

// onFallbackTimer looks at the session armFallback named. Without progress (or without a pair
// after directGrace) the controlling side offers a session with relayed candidates at once; the
// controlled side only records it, so that its answer to that offer gathers them too; both
// report trouble (Config.OnTrouble). A look for a direct pair while relayed that finds no
// progress ends, and the relayed session stays.
func (p *peer) onFallbackTimer() {
	s := p.sess
	if s == nil || s.id != p.fallbackFor || !p.fallbackEligible(s) {
		return
	}
	kept := p.keepCarriesPath()
	elapsed := time.Since(s.checksFrom)
	progress := directProgress(s.agent.GetCandidatePairsStats())
	now, again := fallbackLook(elapsed, progress, kept)
	switch {
	case !now && again > 0:
		p.fallbackTimer.Reset(again)
	case !now:
		// No more looks: the peer is heard from, pion's timeouts decide.
	case kept:
		p.fail("no direct pair: the peer was not heard from")
	default:
		p.directFailed = true
		// No word from the peer may also mean that this host's NAT mapping changed: the root
		// re-checks it, as it would have at troubleAfter.
		p.trouble()
		if !p.controlling {
			p.log.Debug("no direct pair yet: the next session gathers relayed candidates",
				"session", s.id, "after", elapsed.Round(time.Millisecond), "heard", progress)
			return
		}
		p.log.Info("no direct pair yet: falling back to the relay",
			"session", s.id, "after", elapsed.Round(time.Millisecond), "heard", progress)
		p.attempt = 0
		p.offer()
	}
}
