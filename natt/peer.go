package natt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"math/big"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
)

// Bounds on what one peer may make us hold.
const (
	inboxSize         = 128 // queued signals
	earlySessions     = 4   // sessions whose candidates arrived before their offer/answer
	earlyCandidates   = 32  // candidates kept per such session
	maxSessionCands   = 64  // remote candidates accepted per session
	staleSessionsKept = 32  // ended session IDs remembered, to ignore late messages
	finalSignalWait   = time.Second
	offerRenewAfter   = 8 // transmissions of one offer before a fresh session replaces it
	// keepGrace is how long a replaced relayed session stays open after its successor selected
	// a pair: the peer may switch a moment later, and packets already on the way through the
	// old allocation still arrive.
	keepGrace = 5 * time.Second
	// releaseAfter is how long a session that connected directly keeps a TURN allocation it
	// turned out not to need before a session without one replaces it (see armRelease).
	releaseAfter = 10 * time.Second
)

// peer is the actor that owns all ICE state for one remote peer. Its goroutine (run) is the only
// one touching the fields below the line; pion callbacks, HandleSignal and RestartAll reach it
// through queues.
type peer struct {
	m           *Manager
	id          string
	key         [32]byte
	controlling bool
	log         *slog.Logger
	ctx         context.Context
	cancel      context.CancelFunc
	inbox       chan SignalMessage
	kick        chan struct{}
	recheck     chan struct{} // what decides relay gathering changed (see reconsider)
	events      eventQueue
	out         *sender

	statusMu sync.Mutex
	status   PathStatus
	handled  atomic.Uint64 // signals processed, for tests

	wg sync.WaitGroup // the signal sender and the sessions' relay readers

	// ---- owned by run ----
	sess *session
	// keep is the previous session while its relayed pair still carries the peer's traffic
	// and a new session (an upgrade attempt, a restart) looks for a pair; see retire.
	keep      *session
	keepTimer *time.Timer
	// releaseTimer fires releaseAfter after a direct session was found to hold TURN
	// allocations it does not need (armRelease). It is a timer of its own: the peer's other
	// timer is taken by offers and restarts, and a release must not be lost to one of them.
	releaseTimer *time.Timer
	stale        []string            // recently ended sessions, oldest first
	early        map[string][]string // session -> candidates that arrived before it
	earlyIDs     []string            // order of early, for eviction
	attempt      int                 // consecutive failures, for backoff
	// directFailed: a session without relayed candidates failed, and none has connected
	// directly since; the next sessions gather relayed candidates.
	directFailed bool
	timer        *time.Timer
	timerKind    timerKind
	path         Path // as last reported through OnPath
}

type timerKind int

const (
	timerNone    timerKind = iota
	timerOffer             // retransmit our unanswered offer
	timerRestart           // start a new session
	timerUpgrade           // relayed: start a new session to look for a direct pair
)

// session is one ICE session: one agent with one set of credentials.
type session struct {
	id         string
	agent      *ice.Agent
	conn       *ice.Conn // data on the selected pair (relayed pairs), once checks started
	offerer    bool
	relay      bool     // gathers relayed candidates (holds TURN allocations)
	upgrade    bool     // looks for a direct pair while a kept session carries the relayed path
	started    bool     // remote credentials set, checks running
	hello      []byte   // our offer or answer, for retransmission
	localCands [][]byte // our candidate messages, for retransmission
	eoc        []byte   // our end-of-candidates message, once gathering completed
	pending    []string // remote candidates received before checks started
	remote     int      // remote candidates accepted
	tries      int      // offer transmissions
	state      ice.ConnectionState
	// slow fires if the checks have not found a pair troubleAfter after they began; it is
	// stopped when the session connects or closes.
	slow *time.Timer
}

// troubleAfter is how long connectivity checks may run without a working pair before the
// peer reports trouble (Config.OnTrouble). Checks between reachable peers succeed within a
// second; a session that has found nothing after this long is often one that started just as
// this host's NAT mapping changed, which only a NAT re-check reveals, and waiting for pion's
// failed state would cost the full disconnected + failed timeouts.
const troubleAfter = 4 * time.Second

// stopSlow stops the session's slow-checks timer.
func (s *session) stopSlow() {
	if s.slow != nil {
		s.slow.Stop()
	}
}

func newPeer(m *Manager, id string, key [32]byte) *peer {
	ctx, cancel := context.WithCancel(m.ctx)
	p := &peer{
		m:           m,
		id:          id,
		key:         key,
		controlling: m.controlling(key),
		log:         m.log.With("peer", id),
		ctx:         ctx,
		cancel:      cancel,
		inbox:       make(chan SignalMessage, inboxSize),
		kick:        make(chan struct{}, 1),
		recheck:     make(chan struct{}, 1),
		early:       map[string][]string{},
	}
	p.events.notify = make(chan struct{}, 1)
	p.out = newSender(p)
	p.status = PathStatus{PeerID: id, PeerKey: key, Controlling: p.controlling, State: StateNew, Changed: time.Now()}
	return p
}

func (p *peer) statusSnapshot() PathStatus {
	p.statusMu.Lock()
	defer p.statusMu.Unlock()
	return p.status
}

func (p *peer) setStatus(f func(*PathStatus)) {
	p.statusMu.Lock()
	f(&p.status)
	p.status.Changed = time.Now()
	p.statusMu.Unlock()
}

func (p *peer) run() {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.out.run()
	}()
	defer p.wg.Wait()

	p.timer = time.NewTimer(time.Hour)
	p.timer.Stop()
	defer p.timer.Stop()
	p.keepTimer = time.NewTimer(time.Hour)
	p.keepTimer.Stop()
	defer p.keepTimer.Stop()
	p.releaseTimer = time.NewTimer(time.Hour)
	p.releaseTimer.Stop()
	defer p.releaseTimer.Stop()

	p.log.Debug("peer added", "controlling", p.controlling)
	p.offer()
	for {
		select {
		case <-p.ctx.Done():
			p.shutdown()
			return
		case msg := <-p.inbox:
			p.onSignal(msg)
			p.handled.Add(1)
		case <-p.events.notify:
			for _, ev := range p.events.drain() {
				p.onEvent(ev)
			}
		case <-p.timer.C:
			kind := p.timerKind
			p.timerKind = timerNone
			p.onTimer(kind)
		case <-p.releaseTimer.C:
			p.release()
		case <-p.keepTimer.C:
			p.closeKeep()
		case <-p.kick:
			p.log.Info("restarting ICE on request")
			p.attempt = 0
			p.offer()
		case <-p.recheck:
			p.onReconsider()
		}
	}
}

func (p *peer) shutdown() {
	var final []byte
	if p.sess != nil {
		final = p.encode(SignalMessage{Type: SignalRestart, Session: p.sess.id})
		p.endSession()
	}
	p.closeKeep()
	p.setStatus(func(s *PathStatus) { s.State = StateClosed; s.Session = ""; s.Path = Path{} })
	p.out.stop(final)
}

func (p *peer) setTimer(kind timerKind, d time.Duration) {
	p.timer.Stop()
	p.timerKind = kind
	p.timer.Reset(d)
}

func (p *peer) clearTimer() {
	p.timer.Stop()
	p.timerKind = timerNone
}

// backoff returns the delay before restart number attempt (0-based): BackoffMin doubled per
// attempt up to BackoffMax, with ±10 % jitter so that both sides do not restart in lockstep.
func (p *peer) backoff(attempt int) time.Duration {
	d := p.m.cfg.BackoffMin
	for i := 0; i < attempt && d < p.m.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, p.m.cfg.BackoffMax)
	if n, err := rand.Int(rand.Reader, big.NewInt(int64(d/5)+1)); err == nil {
		d = d - d/10 + time.Duration(n.Int64())
	}
	return d
}

func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (p *peer) encode(m SignalMessage) []byte {
	m.V = SignalVersion
	b, err := m.Encode()
	if err != nil {
		p.log.Error("encode signal", "type", m.Type, "err", err)
		return nil
	}
	return b
}

func (p *peer) send(b []byte) {
	if b != nil {
		p.out.push(b)
	}
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

// wantRelay decides whether a new session gathers relayed candidates: only when a relay is
// likely needed (see Manager.SetLocalNAT). An upgrade session never does: it looks for a direct
// pair while the kept session's allocation carries the traffic, so a relayed peer does not
// allocate again at every look.
func (p *peer) wantRelay(upgrade bool) (bool, string) {
	switch {
	case len(p.m.turnURLs()) == 0:
		return false, ""
	case p.m.cfg.RelayOnly:
		return true, "relay only"
	case upgrade:
		return false, ""
	case p.directFailed:
		return true, "the last session failed without a relay"
	}
	return p.m.relayHint(p.id)
}

// onReconsider follows a change of what decides relay gathering. A session that needs a relay
// now but has none and has not begun its checks is replaced at once (a session already
// checking goes on: if it fails, the next one gathers relayed candidates); a direct session
// holding an allocation it no longer needs is replaced later (armRelease).
func (p *peer) onReconsider() {
	s := p.sess
	want, why := p.wantRelay(false)
	live := s != nil && (s.state == ice.ConnectionStateConnected || s.state == ice.ConnectionStateCompleted)
	switch {
	case want && p.keep == nil && (s == nil || !s.relay && !s.started):
		p.log.Info("a relay is likely needed: starting a session with relayed candidates", "why", why)
		p.attempt = 0
		p.offer()
	case !want && live:
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

// holdsUnneededAllocation reports whether the current session gathered relayed candidates but
// carries a direct path, and no relay is wanted any more.
func (p *peer) holdsUnneededAllocation() bool {
	s := p.sess
	if s == nil || !s.relay || p.m.cfg.RelayOnly || !p.path.Valid() || p.path.Relayed() || p.path.session != s.id {
		return false
	}
	want, _ := p.wantRelay(false)
	return !want
}

// newSession creates an agent for session id and wires its callbacks to the event queue.
func (p *peer) newSession(id string, offerer, upgrade bool) (*session, error) {
	relay, why := p.wantRelay(upgrade)
	a, err := p.m.newAgent(relay)
	if err != nil {
		return nil, err
	}
	if relay {
		p.log.Debug("session gathers relayed candidates", "session", id, "why", why)
	}
	s := &session{id: id, agent: a, offerer: offerer, relay: relay, upgrade: upgrade}
	err = a.OnCandidate(func(c ice.Candidate) {
		if c == nil {
			p.events.push(agentEvent{sess: id, kind: evGathered})
			return
		}
		p.events.push(agentEvent{sess: id, kind: evCandidate, cand: c.Marshal()})
	})
	if err == nil {
		err = a.OnConnectionStateChange(func(st ice.ConnectionState) {
			p.events.push(agentEvent{sess: id, kind: evState, state: st})
		})
	}
	if err == nil {
		err = a.OnSelectedCandidatePairChange(func(local, remote ice.Candidate) {
			p.events.push(agentEvent{sess: id, kind: evPair, path: pathOf(local, remote)})
		})
	}
	if err != nil {
		_ = a.GracefulClose()
		return nil, err
	}
	return s, nil
}

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
	p.sess = s
	cred := p.creds(s)
	s.hello = p.encode(SignalMessage{Type: SignalOffer, Session: s.id, Ufrag: cred[0], Pwd: cred[1]})
	s.tries = 1
	p.send(s.hello)
	p.gather(s)
	p.setTimer(timerOffer, p.m.cfg.OfferTimeout)
	p.setStatus(func(st *PathStatus) { st.State = StateOffering; st.Session = s.id; st.Sessions++ })
	p.log.Debug("offered", "session", s.id)
}

// startFailed handles a session that could not even be created: the kept relayed session, if
// any, stays current; otherwise the peer waits for a restart, saying why (a peer still in
// StateNew would look as if its first session were about to start).
func (p *peer) startFailed(what string, err error) {
	p.log.Warn(what, "err", err)
	reason := what + ": " + err.Error()
	if k := p.keep; k != nil && p.path.Valid() && p.path.session == k.id {
		p.unretire(reason)
		return
	}
	p.setStatus(func(st *PathStatus) { st.State, st.Session, st.Reason = StateWaiting, "", reason })
	p.scheduleRestart()
}

func (p *peer) creds(s *session) [2]string {
	ufrag, pwd, err := s.agent.GetLocalUserCredentials()
	if err != nil {
		p.log.Warn("local credentials", "err", err)
	}
	return [2]string{ufrag, pwd}
}

func (p *peer) gather(s *session) {
	if err := s.agent.GatherCandidates(); err != nil {
		p.log.Warn("gather candidates", "session", s.id, "err", err)
	}
}

// endSession closes the current agent and remembers its session as stale. It does not report
// the path as lost: a new session may keep it, and WireGuard keeps using it meanwhile.
func (p *peer) endSession() {
	s := p.sess
	if s == nil {
		return
	}
	p.sess = nil
	p.markStale(s.id)
	if p.timerKind == timerOffer {
		p.clearTimer()
	}
	s.stopSlow()
	if err := s.agent.GracefulClose(); err != nil {
		p.log.Debug("close agent", "session", s.id, "err", err)
	}
}

// retire makes way for a new session. A session whose relayed pair carries the peer's traffic
// is kept open (p.keep) until the new session selects a pair (then closed after keepGrace) or
// fails (then it is the current session again): a direct path outlives its session, since
// WireGuard sends to its address on the shared socket, but a relayed one needs the session's
// TURN allocation. Any other session is ended.
func (p *peer) retire() {
	s := p.sess
	live := s != nil && (s.state == ice.ConnectionStateConnected || s.state == ice.ConnectionStateCompleted)
	if !live || !p.path.Valid() || p.path.Send == nil || p.path.session != s.id {
		p.endSession()
		return
	}
	p.closeKeep()
	p.sess = nil
	p.markStale(s.id)
	if p.timerKind == timerOffer || p.timerKind == timerUpgrade {
		p.clearTimer()
	}
	p.keep = s
	p.log.Debug("keeping the relayed session while a new one starts", "session", s.id)
}

// closeKeep closes the kept session, if any.
func (p *peer) closeKeep() {
	k := p.keep
	if k == nil {
		return
	}
	p.keep = nil
	p.keepTimer.Stop()
	k.stopSlow()
	if err := k.agent.GracefulClose(); err != nil {
		p.log.Debug("close kept agent", "session", k.id, "err", err)
	}
	p.log.Debug("closed the replaced relayed session", "session", k.id)
}

// unretire makes the kept session the current one again: the session that was to replace it
// failed, and the relayed path still works.
func (p *peer) unretire(reason string) {
	k := p.keep
	p.log.Info("no new path; staying on the relayed one", "reason", reason)
	p.endSession()
	p.keep = nil
	p.keepTimer.Stop()
	p.stale = slices.DeleteFunc(p.stale, func(id string) bool { return id == k.id })
	p.sess = k
	p.setStatus(func(st *PathStatus) { st.State, st.Session = StateConnected, k.id })
	p.armUpgrade()
}

// armUpgrade schedules the next look for a direct pair while the path is relayed. Only the
// controlling side does it, so that the two sides do not offer at once.
func (p *peer) armUpgrade() {
	relayed := p.path.Valid() && p.path.Relayed()
	switch {
	case relayed && p.controlling && p.timerKind == timerNone:
		d := p.m.cfg.UpgradeInterval
		if n, err := rand.Int(rand.Reader, big.NewInt(int64(d/5)+1)); err == nil {
			d = d - d/10 + time.Duration(n.Int64())
		}
		p.setTimer(timerUpgrade, d)
	case !relayed && p.timerKind == timerUpgrade:
		p.clearTimer()
	}
}

// sessionPath completes a pair selected by session s: the session it belongs to and, for a
// relayed pair, the function that sends through it.
func (p *peer) sessionPath(s *session, path Path) Path {
	path.session = s.id
	if path.Valid() && path.Relayed() && s.conn != nil {
		conn := s.conn
		path.Send = func(b []byte) error {
			_, err := conn.Write(b)
			return err
		}
	}
	return path
}

// startReader passes what arrives on session s's pairs (outside STUN: the peer's WireGuard
// packets over a relayed pair) to OnRelayPacket, until the session's agent is closed.
func (p *peer) startReader(s *session) {
	f := p.m.cfg.OnRelayPacket
	if f == nil || s.conn == nil {
		return
	}
	conn := s.conn
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 65535)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return // the agent was closed
			}
			if p.ctx.Err() == nil {
				f(p.id, p.key, buf[:n])
			}
		}
	}()
}

func (p *peer) markStale(id string) {
	for _, s := range p.stale {
		if s == id {
			return
		}
	}
	p.stale = append(p.stale, id)
	if len(p.stale) > staleSessionsKept {
		p.stale = p.stale[1:]
	}
	delete(p.early, id)
}

func (p *peer) isStale(id string) bool {
	for _, s := range p.stale {
		if s == id {
			return true
		}
	}
	return false
}

// fail records a failed or ended session: the path is reported lost and a new session is
// scheduled after a backoff.
func (p *peer) fail(reason string) {
	if k := p.keep; k != nil && p.path.Valid() && p.path.session == k.id {
		p.unretire(reason)
		return
	}
	p.log.Info("ICE path lost", "reason", reason, "retry", p.attempt+1)
	p.trouble()
	p.endSession()
	p.reportPath(Path{})
	p.setStatus(func(st *PathStatus) {
		if st.State != StateDisconnected { // already counted
			st.Failures++
		}
		st.State, st.Session, st.Reason = StateWaiting, "", reason
	})
	p.scheduleRestart()
}

// trouble tells the root that a session stopped working (Config.OnTrouble).
func (p *peer) trouble() {
	if f := p.m.cfg.OnTrouble; f != nil && p.ctx.Err() == nil {
		f(p.id)
	}
}

func (p *peer) scheduleRestart() {
	d := p.backoff(p.attempt)
	p.attempt++
	p.setTimer(timerRestart, d)
}

func (p *peer) reportPath(path Path) {
	if path.Valid() == p.path.Valid() && (!path.Valid() || p.samePath(path)) {
		if path.Valid() {
			p.path.session = path.session // a new session on the same direct pair
		}
		return
	}
	p.path = path
	if k := p.keep; k != nil && path.Valid() && path.session != k.id {
		// The new session has its pair: the kept one goes once the peer has switched too.
		p.keepTimer.Reset(keepGrace)
	}
	p.setStatus(func(st *PathStatus) { st.Path = path })
	if path.Valid() {
		p.log.Info("ICE path selected", "path", path.String())
	}
	if p.m.cfg.OnPath != nil && p.ctx.Err() == nil {
		p.m.cfg.OnPath(p.id, p.key, path)
	}
}

// samePath reports whether path is the pair already reported. A relayed pair of another session
// is not: its Send goes through another agent.
func (p *peer) samePath(path Path) bool {
	if !path.samePair(p.path) || (path.Send == nil) != (p.path.Send == nil) {
		return false
	}
	return path.Send == nil || path.session == p.path.session
}

func (p *peer) onTimer(kind timerKind) {
	switch kind {
	case timerUpgrade:
		s := p.sess
		if s == nil || !p.path.Valid() || !p.path.Relayed() || p.path.session != s.id {
			return
		}
		p.log.Info("relayed: looking for a direct path")
		p.attempt = 0
		p.offerSession(true)
	case timerOffer:
		s := p.sess
		if s == nil || !s.offerer || s.started {
			return
		}
		if s.tries >= offerRenewAfter {
			// Unanswered for long: its server-reflexive candidates may be stale by now.
			p.offer()
			return
		}
		s.tries++
		p.resendBundle(s)
		d := p.m.cfg.OfferTimeout
		for i := 1; i < s.tries && d < p.m.cfg.BackoffMax; i++ {
			d *= 2
		}
		p.setTimer(timerOffer, min(d, p.m.cfg.BackoffMax))
	case timerRestart:
		p.offer()
	}
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

func (p *peer) onSignal(msg SignalMessage) {
	if p.isStale(msg.Session) {
		p.log.Debug("ignoring signal for an ended session", "type", msg.Type, "session", msg.Session)
		return
	}
	s := p.sess
	cur := s != nil && s.id == msg.Session
	switch msg.Type {
	case SignalOffer:
		switch {
		case cur && !s.offerer:
			p.resendBundle(s) // a retransmitted offer: our answer was lost
		case cur:
			// Our own session ID coming back: cannot happen with random IDs.
		case s != nil && s.offerer && !s.started && p.controlling:
			// Glare: both sides offered. The controlling side's offer wins; the peer will
			// answer ours. Resend it now in case the first copy reached nobody.
			p.log.Debug("glare: keeping our offer", "ours", s.id, "theirs", msg.Session)
			p.markStale(msg.Session)
			p.resendBundle(s)
		default:
			p.answer(msg)
		}
	case SignalAnswer:
		if !cur || !s.offerer || s.started {
			return
		}
		p.clearTimer()
		p.start(s, msg.Ufrag, msg.Pwd)
	case SignalCandidate:
		if cur {
			if s.started {
				p.addRemote(s, msg.Candidate)
			} else if len(s.pending) < maxSessionCands {
				s.pending = append(s.pending, msg.Candidate)
			}
			return
		}
		p.keepEarly(msg.Session, msg.Candidate)
	case SignalEndOfCandidates:
		// Informational: pion keeps checking until it fails or connects either way.
	case SignalRestart:
		if cur {
			p.markStale(msg.Session)
			p.fail("peer ended the session")
		}
	}
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
	p.sess = s
	cred := p.creds(s)
	s.hello = p.encode(SignalMessage{Type: SignalAnswer, Session: s.id, Ufrag: cred[0], Pwd: cred[1]})
	p.send(s.hello)
	s.pending = append(s.pending, p.early[s.id]...)
	delete(p.early, s.id)
	p.setStatus(func(st *PathStatus) { st.Session = s.id; st.Sessions++ })
	p.start(s, offer.Ufrag, offer.Pwd)
	p.gather(s)
	p.log.Debug("answered", "session", s.id)
}

// start begins connectivity checks once both credential sets are known. ICE roles follow key
// order, whoever offered.
func (p *peer) start(s *session, ufrag, pwd string) {
	var err error
	if p.controlling {
		s.conn, err = s.agent.StartDial(ufrag, pwd)
	} else {
		s.conn, err = s.agent.StartAccept(ufrag, pwd)
	}
	if err != nil {
		p.log.Warn("start connectivity checks", "session", s.id, "err", err)
		p.fail("cannot start checks")
		return
	}
	s.started = true
	p.startReader(s)
	p.setStatus(func(st *PathStatus) { st.State = StateChecking })
	for _, c := range s.pending {
		p.addRemote(s, c)
	}
	s.pending = nil
	for _, c := range p.early[s.id] {
		p.addRemote(s, c)
	}
	delete(p.early, s.id)
}

func (p *peer) addRemote(s *session, raw string) {
	if s.remote >= maxSessionCands {
		return
	}
	c, err := parseCandidate(raw)
	if err != nil {
		p.log.Debug("bad remote candidate", "err", err)
		return
	}
	if c.NetworkType().IsIPv6() && !p.m.cfg.IPv6 {
		return
	}
	if err := s.agent.AddRemoteCandidate(c); err != nil {
		p.log.Debug("add remote candidate", "session", s.id, "err", err)
		return
	}
	s.remote++
}

// keepEarly holds candidates of a session we have not heard of yet: signaling may deliver them
// before the offer or answer.
func (p *peer) keepEarly(session, cand string) {
	if _, ok := p.early[session]; !ok {
		if len(p.earlyIDs) >= earlySessions {
			delete(p.early, p.earlyIDs[0])
			p.earlyIDs = p.earlyIDs[1:]
		}
		p.earlyIDs = append(p.earlyIDs, session)
		p.early[session] = nil
	}
	if len(p.early[session]) < earlyCandidates {
		p.early[session] = append(p.early[session], cand)
	}
}

func (p *peer) onEvent(ev agentEvent) {
	s := p.sess
	if s == nil || s.id != ev.sess {
		if k := p.keep; k != nil && k.id == ev.sess && ev.kind == evState {
			p.onKeptState(k, ev.state)
		}
		return // an event of an agent we already closed
	}
	switch ev.kind {
	case evCandidate:
		b := p.encode(SignalMessage{Type: SignalCandidate, Session: s.id, Candidate: ev.cand})
		if b != nil {
			s.localCands = append(s.localCands, b)
			p.send(b)
		}
	case evGathered:
		s.eoc = p.encode(SignalMessage{Type: SignalEndOfCandidates, Session: s.id})
		p.send(s.eoc)
	case evPair:
		if s.state == ice.ConnectionStateDisconnected || s.state == ice.ConnectionStateFailed {
			return
		}
		p.reportPath(p.sessionPath(s, ev.path))
		p.armUpgrade()
	case evState:
		p.onState(s, ev.state)
	}
}

func (p *peer) onState(s *session, st ice.ConnectionState) {
	s.state = st
	p.log.Debug("ICE state", "session", s.id, "state", st.String())
	switch st {
	case ice.ConnectionStateChecking:
		if s.slow == nil {
			s.slow = time.AfterFunc(troubleAfter, p.trouble)
		}
	case ice.ConnectionStateConnected, ice.ConnectionStateCompleted:
		s.stopSlow()
		p.attempt = 0
		if p.timerKind == timerRestart {
			p.clearTimer() // recovered from Disconnected
		}
		if pair, err := s.agent.GetSelectedCandidatePair(); err == nil && pair != nil {
			path := p.sessionPath(s, pathOf(pair.Local, pair.Remote))
			if p.path.Valid() && path.samePair(p.path) {
				path.Since = p.path.Since
			}
			p.reportPath(path)
		}
		if p.path.Valid() && !p.path.Relayed() {
			p.directFailed = false
		}
		// After the path: whoever sees StateConnected also sees its pair (and OnPath has run).
		p.setStatus(func(ps *PathStatus) { ps.State = StateConnected; ps.Reason = "" })
		p.armUpgrade()
		p.armRelease()
	case ice.ConnectionStateDisconnected:
		// Consent checks get no answers. Report the path lost now; give the session until the
		// restart backoff to recover before replacing it (pion moves it to Failed later anyway).
		p.log.Info("ICE path lost", "reason", "consent checks unanswered", "session", s.id)
		p.trouble()
		p.reportPath(Path{})
		p.setStatus(func(ps *PathStatus) {
			ps.State = StateDisconnected
			ps.Failures++
			ps.Reason = "consent checks unanswered"
		})
		p.scheduleRestart()
	case ice.ConnectionStateFailed:
		if !s.relay && !s.upgrade && len(p.m.turnURLs()) > 0 {
			p.directFailed = true
		}
		p.fail("ICE failed: no candidate pair works")
	}
}

// onKeptState follows the kept relayed session: if it fails while its successor is still
// looking for a pair, its path is lost.
func (p *peer) onKeptState(k *session, st ice.ConnectionState) {
	k.state = st
	switch st {
	case ice.ConnectionStateDisconnected, ice.ConnectionStateFailed, ice.ConnectionStateClosed:
		p.log.Info("replaced relayed session lost", "session", k.id, "state", st.String())
		p.closeKeep()
		if p.path.Valid() && p.path.session == k.id {
			p.log.Info("ICE path lost", "reason", "relayed session lost", "session", k.id)
			p.reportPath(Path{})
			p.setStatus(func(ps *PathStatus) { ps.Failures++; ps.Reason = "relayed session lost" })
		}
	}
}

// ---- queues ----

type eventKind int

const (
	evCandidate eventKind = iota
	evGathered
	evState
	evPair
)

type agentEvent struct {
	sess  string
	kind  eventKind
	cand  string
	state ice.ConnectionState
	path  Path
}

// eventQueue is an unbounded queue from pion's callbacks to the actor: callbacks must never
// block (closing an agent waits for them). It holds what one agent produces: a few candidates
// and state changes.
type eventQueue struct {
	mu     sync.Mutex
	q      []agentEvent
	notify chan struct{}
}

func (e *eventQueue) push(ev agentEvent) {
	e.mu.Lock()
	e.q = append(e.q, ev)
	e.mu.Unlock()
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

func (e *eventQueue) drain() []agentEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.q
	e.q = nil
	return q
}

// sender sends one peer's signals in order from its own goroutine, so that a slow coordinator
// never blocks ICE.
type sender struct {
	p        *peer
	mu       sync.Mutex
	q        [][]byte
	stopping bool
	notify   chan struct{}
}

const maxOutbox = 256

func newSender(p *peer) *sender { return &sender{p: p, notify: make(chan struct{}, 1)} }

func (s *sender) push(b []byte) {
	s.mu.Lock()
	if !s.stopping {
		if len(s.q) >= maxOutbox {
			s.q = s.q[1:] // the oldest is the least useful; retransmission repairs the loss
		}
		s.q = append(s.q, b)
	}
	s.mu.Unlock()
	s.wake()
}

func (s *sender) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// stop discards what is queued, queues final (if not nil), and lets run exit once it is sent.
func (s *sender) stop(final []byte) {
	s.mu.Lock()
	s.stopping = true
	s.q = nil
	if final != nil {
		s.q = [][]byte{final}
	}
	s.mu.Unlock()
	s.wake()
}

func (s *sender) run() {
	for {
		s.mu.Lock()
		var b []byte
		if len(s.q) > 0 {
			b = s.q[0]
			s.q = s.q[1:]
		}
		stopping := s.stopping
		s.mu.Unlock()
		switch {
		case b != nil && stopping:
			ctx, cancel := context.WithTimeout(context.Background(), finalSignalWait)
			s.signal(ctx, b)
			cancel()
		case b != nil:
			s.signal(s.p.ctx, b)
		case stopping:
			return
		default:
			<-s.notify
		}
	}
}

func (s *sender) signal(ctx context.Context, b []byte) {
	if err := s.p.m.cfg.Signal(ctx, s.p.id, b); err != nil {
		s.p.log.Debug("signal not delivered", "err", err)
	}
}
