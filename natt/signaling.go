// signaling.go holds a peer's side of the signaling: offering and answering sessions,
// retransmitting unanswered offers, resolving glare, and deciding what each incoming message
// does (decideSignal, pure), with the memory of ended sessions and early candidates it needs.

package natt

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
)

// Bounds on what one peer may make us hold, and on retransmission.
const (
	earlySessions     = 4  // sessions whose candidates arrived before their offer/answer
	earlyCandidates   = 32 // candidates kept per such session
	staleSessionsKept = 32 // ended session IDs remembered, to ignore late messages
	offerRenewAfter   = 8  // transmissions of one offer before a fresh session replaces it
)

// signalAction is what a peer does with one incoming signaling message.
type signalAction int

const (
	sigIgnore    signalAction = iota // of an ended session, unasked for, or informational
	sigResend                        // a retransmitted offer: our answer was lost, send it again
	sigGlare                         // both sides offered and ours wins: drop theirs, resend ours
	sigAnswer                        // an offer to accept, replacing whatever session we had
	sigStart                         // the answer to our offer: start the checks
	sigCandidate                     // a candidate of the current session, checks running
	sigPending                       // a candidate of the current session, checks not started
	sigEarly                         // a candidate of a session not heard of yet
	sigPeerEnded                     // the peer ended the current session
)

// sessionView is what decideSignal needs to know of the current session.
type sessionView struct {
	id      string // "" when there is none
	offerer bool
	started bool
}

func (s *session) view() sessionView {
	if s == nil {
		return sessionView{}
	}
	return sessionView{id: s.id, offerer: s.offerer, started: s.started}
}

// decideSignal decides what msg does, given the current session cur, whether this side is the
// controlling one, and whether msg's session has ended. Glare — two offers crossing — is
// resolved by role: the controlling side keeps its offer, the controlled side answers.
func decideSignal(cur sessionView, controlling, ended bool, msg SignalMessage) signalAction {
	if ended {
		return sigIgnore
	}
	isCur := cur.id != "" && cur.id == msg.Session
	switch msg.Type {
	case SignalOffer:
		switch {
		case isCur && !cur.offerer:
			return sigResend
		case isCur: // our own session ID coming back: cannot happen with random IDs
			return sigIgnore
		case cur.id != "" && cur.offerer && !cur.started && controlling:
			return sigGlare
		}
		return sigAnswer
	case SignalAnswer:
		if isCur && cur.offerer && !cur.started {
			return sigStart
		}
	case SignalCandidate:
		switch {
		case isCur && cur.started:
			return sigCandidate
		case isCur:
			return sigPending
		}
		return sigEarly
	case SignalRestart:
		if isCur {
			return sigPeerEnded
		}
	}
	// End-of-candidates is informational: pion keeps checking until it fails or connects.
	return sigIgnore
}

func (p *peer) onSignal(msg SignalMessage) {
	s := p.sess
	switch decideSignal(s.view(), p.controlling, p.memory.ended(msg.Session), msg) {
	case sigIgnore:
		p.log.Debug("ignoring signal", "type", msg.Type, "session", msg.Session)
	case sigResend:
		p.resendBundle(s)
	case sigGlare:
		// The peer will answer ours. Resend it now in case the first copy reached nobody.
		p.log.Debug("glare: keeping our offer", "ours", s.id, "theirs", msg.Session)
		p.memory.end(msg.Session)
		p.resendBundle(s)
	case sigAnswer:
		p.answer(msg)
	case sigStart:
		p.clearTimer()
		p.start(s, msg.Ufrag, msg.Pwd)
	case sigCandidate:
		p.addRemote(s, msg.Candidate)
	case sigPending:
		if len(s.pending) < maxSessionCands {
			s.pending = append(s.pending, msg.Candidate)
		}
	case sigEarly:
		p.memory.hold(msg.Session, msg.Candidate)
	case sigPeerEnded:
		p.memory.end(msg.Session)
		p.fail("peer ended the session")
	}
}

// offer ends (or retires) the current session, if any, and offers a new one.
func (p *peer) offer() { p.offerSession(false) }

// offerSession is offer; upgrade marks a look for a direct pair while the path is relayed.
func (p *peer) offerSession(upgrade bool) {
	p.retire()
	s, err := p.newSession(newSessionID(), true, upgrade)
	if err != nil {
		p.startFailed("cannot start ICE session", err)
		return
	}
	p.hello(s, SignalOffer)
	s.tries = 1
	p.gather(s)
	p.setTimer(timerOffer, offerRetryDelay(&p.m.cfg, s.tries))
	p.note(statusEvent{kind: statusOffered, session: s.id})
	p.log.Debug("offered", "session", s.id)
}

// answer accepts a peer's offer, replacing whatever session we had.
func (p *peer) answer(offer SignalMessage) {
	p.retire()
	if p.timerKind == timerRestart {
		p.clearTimer()
	}
	// With a relayed path kept, the peer is looking for a direct pair (or refreshing its own
	// allocation): the kept session carries the traffic meanwhile, so this one allocates
	// nothing.
	s, err := p.newSession(offer.Session, false, p.keep != nil)
	if err != nil {
		p.startFailed("cannot answer ICE offer", err)
		return
	}
	p.hello(s, SignalAnswer)
	s.pending = append(s.pending, p.memory.take(s.id)...)
	p.note(statusEvent{kind: statusAnswered, session: s.id})
	p.start(s, offer.Ufrag, offer.Pwd)
	p.gather(s)
	p.log.Debug("answered", "session", s.id)
}

// hello makes s the current session and sends its offer or answer (typ), kept for
// retransmission.
func (p *peer) hello(s *session, typ SignalType) {
	p.sess = s
	ufrag, pwd := p.creds(s)
	s.hello = p.encode(SignalMessage{Type: typ, Session: s.id, Ufrag: ufrag, Pwd: pwd})
	p.send(s.hello)
}

// onOfferTimer retransmits our unanswered offer with backoff, or, once it has gone unanswered
// for long, replaces it: its server-reflexive candidates may be stale by now.
func (p *peer) onOfferTimer() {
	s := p.sess
	if s == nil || !s.offerer || s.started {
		return
	}
	if s.tries >= offerRenewAfter {
		p.offer()
		return
	}
	s.tries++
	p.resendBundle(s)
	p.setTimer(timerOffer, offerRetryDelay(&p.m.cfg, s.tries))
}

// resendBundle sends our offer or answer again with every candidate gathered so far: the
// previous transmission may have reached nobody (the peer was not registered yet).
func (p *peer) resendBundle(s *session) {
	p.send(s.hello)
	for _, c := range s.localCands {
		p.send(c)
	}
	p.send(s.eoc)
}

func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sessionMemory is what a peer remembers of sessions other than the current one: the ones that
// ended (so that their late messages are ignored), and the candidates of sessions not heard of
// yet (signaling may deliver them before the offer or answer). Both are bounded.
type sessionMemory struct {
	stale    []string            // ended sessions, oldest first
	early    map[string][]string // session -> candidates that arrived before it
	earlyIDs []string            // the keys of early, oldest first, for eviction
}

// end remembers session id as ended, forgetting its early candidates.
func (m *sessionMemory) end(id string) {
	if !slices.Contains(m.stale, id) {
		m.stale = append(m.stale, id)
		if len(m.stale) > staleSessionsKept {
			m.stale = m.stale[1:]
		}
	}
	m.take(id)
}

// ended reports whether session id has ended.
func (m *sessionMemory) ended(id string) bool { return slices.Contains(m.stale, id) }

// revive forgets that session id ended: it is current again.
func (m *sessionMemory) revive(id string) {
	m.stale = slices.DeleteFunc(m.stale, func(s string) bool { return s == id })
}

// hold keeps a candidate of session id, not heard of yet, evicting the oldest such session when
// too many are held.
func (m *sessionMemory) hold(id, cand string) {
	if _, ok := m.early[id]; !ok {
		if len(m.earlyIDs) >= earlySessions {
			delete(m.early, m.earlyIDs[0])
			m.earlyIDs = m.earlyIDs[1:]
		}
		if m.early == nil {
			m.early = map[string][]string{}
		}
		m.earlyIDs = append(m.earlyIDs, id)
		m.early[id] = nil
	}
	if len(m.early[id]) < earlyCandidates {
		m.early[id] = append(m.early[id], cand)
	}
}

// take returns and forgets the candidates held for session id.
func (m *sessionMemory) take(id string) []string {
	c, ok := m.early[id]
	if !ok {
		return nil
	}
	delete(m.early, id)
	m.earlyIDs = slices.DeleteFunc(m.earlyIDs, func(s string) bool { return s == id })
	return c
}
