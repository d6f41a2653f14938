// peer.go holds the actor that owns everything ICE knows of one peer: its loop over signals,
// agent events and timers, and its reaction to what the current session's agent reports. The
// other jobs of the actor live beside it: ice_session.go (one agent), signaling.go (offers,
// answers, candidates), relay_policy.go and relay_handover.go (relayed candidates and paths),
// status.go (what it reports), sendqueue.go (its queues) and backoff.go (its delays).

package natt

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"

	"github.com/nexodus-sdk/nexodus/key"
)

const (
	inboxSize = 128 // queued signals
	// keepGrace is how long a replaced relayed session stays open after its successor selected
	// a pair: the peer may switch a moment later, and packets already on the way through the
	// old allocation still arrive.
	keepGrace = 5 * time.Second
	// releaseAfter is how long a session that connected directly keeps a TURN allocation it
	// turned out not to need before a session without one replaces it (see armRelease).
	releaseAfter = 10 * time.Second
	// troubleAfter is how long connectivity checks may run without a working pair before the
	// peer reports trouble (Config.OnTrouble). Checks between reachable peers succeed within a
	// second; a session that has found nothing after this long is often one that started just
	// as this host's NAT mapping changed, which only a NAT re-check reveals, and waiting for
	// pion's failed state would cost the full disconnected + failed timeouts.
	troubleAfter = 4 * time.Second
)

// peer is the actor that owns all ICE state for one remote peer. Its goroutine (run) is the only
// one touching the fields below the line; pion callbacks, HandleSignal and RestartAll reach it
// through queues.
type peer struct {
	m           *Manager
	id          string
	key         key.Key
	controlling bool
	log         *slog.Logger
	ctx         context.Context
	cancel      context.CancelFunc
	inbox       chan SignalMessage
	kick        chan struct{} // restart now (restartNow)
	recheck     chan struct{} // what decides relay gathering changed (see reconsider)
	events      *eventQueue
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
	// fallbackTimer fires the fast-fallback looks at the session fallbackFor (see
	// relay_fallback.go); a timer of its own, for the same reason as releaseTimer.
	fallbackTimer *time.Timer
	fallbackFor   string
	// upgradeLooks counts the looks for a direct pair since the path became relayed: the first
	// comes early (see upgradeDelay).
	upgradeLooks int
	memory       sessionMemory // ended sessions, and candidates of sessions not heard of yet
	attempt      int           // consecutive failures, for backoff
	// directFailed: a session without relayed candidates failed, or heard nothing from the peer
	// in time (fast fallback), and none has connected directly since; the next sessions gather
	// relayed candidates.
	directFailed bool
	timer        *time.Timer
	timerKind    timerKind
	path         Path // as last reported through OnPath
}

// timerKind is what the peer's main timer is set for.
type timerKind int

const (
	timerNone    timerKind = iota
	timerOffer             // retransmit our unanswered offer
	timerRestart           // start a new session
	timerUpgrade           // relayed: start a new session to look for a direct pair
)

func newPeer(m *Manager, id string, k key.Key) *peer {
	ctx, cancel := context.WithCancel(m.ctx)
	p := &peer{
		m:           m,
		id:          id,
		key:         k,
		controlling: m.controlling(k),
		log:         m.log.With("peer", id),
		ctx:         ctx,
		cancel:      cancel,
		inbox:       make(chan SignalMessage, inboxSize),
		kick:        make(chan struct{}, 1),
		recheck:     make(chan struct{}, 1),
		events:      newEventQueue(),
	}
	p.out = newSender(ctx, func(ctx context.Context, b []byte) error { return m.cfg.Signal(ctx, id, b) }, p.log)
	p.status = newStatus(id, k, p.controlling, time.Now())
	return p
}

func (p *peer) statusSnapshot() PathStatus {
	p.statusMu.Lock()
	defer p.statusMu.Unlock()
	return p.status
}

// note records a status event.
func (p *peer) note(ev statusEvent) {
	p.statusMu.Lock()
	p.status = p.status.next(ev, time.Now())
	p.statusMu.Unlock()
}

// restartNow asks the actor for a new session now, without backoff. It does not block.
func (p *peer) restartNow() { wake(p.kick) }

func (p *peer) run() {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.out.run()
	}()
	defer p.wg.Wait()

	p.timer = stoppedTimer()
	defer p.timer.Stop()
	p.keepTimer = stoppedTimer()
	defer p.keepTimer.Stop()
	p.releaseTimer = stoppedTimer()
	defer p.releaseTimer.Stop()
	p.fallbackTimer = stoppedTimer()
	defer p.fallbackTimer.Stop()

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
		case <-p.fallbackTimer.C:
			p.onFallbackTimer()
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

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

func (p *peer) shutdown() {
	var final []byte
	if p.sess != nil {
		final = p.encode(SignalMessage{Type: SignalRestart, Session: p.sess.id})
		p.endSession()
	}
	p.closeKeep()
	p.note(statusEvent{kind: statusClosed})
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

func (p *peer) onTimer(kind timerKind) {
	switch kind {
	case timerUpgrade:
		p.onUpgradeTimer()
	case timerOffer:
		p.onOfferTimer()
	case timerRestart:
		p.offer()
	}
}

func (p *peer) scheduleRestart() {
	d := restartDelay(&p.m.cfg, p.attempt)
	p.attempt++
	p.setTimer(timerRestart, d)
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
		p.note(statusEvent{kind: statusConnected})
		p.armUpgrade()
		p.armRelease()
	case ice.ConnectionStateDisconnected:
		// Consent checks get no answers. Report the path lost now; give the session until the
		// restart backoff to recover before replacing it (pion moves it to Failed later anyway).
		const reason = "consent checks unanswered"
		p.log.Info("ICE path lost", "reason", reason, "session", s.id)
		p.trouble()
		p.reportPath(Path{})
		p.note(statusEvent{kind: statusDisconnected, reason: reason})
		p.scheduleRestart()
	case ice.ConnectionStateFailed:
		p.failedDirect(s)
		p.fail("ICE failed: no candidate pair works")
	}
}

// fail records a failed or ended session: the path is reported lost and a new session is
// scheduled after a backoff.
func (p *peer) fail(reason string) {
	if p.keepCarriesPath() {
		p.unretire(reason)
		return
	}
	p.log.Info("ICE path lost", "reason", reason, "retry", p.attempt+1)
	p.trouble()
	p.endSession()
	p.reportPath(Path{})
	p.note(statusEvent{kind: statusFailed, reason: reason})
	p.scheduleRestart()
}

// startFailed handles a session that could not even be created: the kept relayed session, if
// any, stays current; otherwise the peer waits for a restart, saying why (a peer still in
// StateNew would look as if its first session were about to start).
func (p *peer) startFailed(what string, err error) {
	p.log.Warn(what, "err", err)
	reason := what + ": " + err.Error()
	if p.keepCarriesPath() {
		p.unretire(reason)
		return
	}
	p.note(statusEvent{kind: statusNotStarted, reason: reason})
	p.scheduleRestart()
}

// trouble tells the root that a session stopped working (Config.OnTrouble).
func (p *peer) trouble() {
	if f := p.m.cfg.OnTrouble; f != nil && p.ctx.Err() == nil {
		f(p.id)
	}
}

// reportPath records the pair a session selected (the zero Path: lost) and, if it is news
// (nextPath), tells OnPath.
func (p *peer) reportPath(path Path) {
	next, changed := nextPath(p.path, path)
	p.path = next
	if !changed {
		return
	}
	if !next.Relayed() {
		p.upgradeLooks = 0 // direct or lost: the next relayed path gets an early look again
	}
	if k := p.keep; k != nil && path.Valid() && path.session != k.id {
		// The new session has its pair: the kept one goes once the peer has switched too.
		p.keepTimer.Reset(keepGrace)
	}
	p.note(statusEvent{kind: statusPath, path: path})
	if path.Valid() {
		p.log.Info("ICE path selected", "path", path.String())
	}
	if p.m.cfg.OnPath != nil && p.ctx.Err() == nil {
		p.m.cfg.OnPath(p.id, p.key, path)
	}
}

// encode returns the wire form of m, or nil (logged) if it cannot be encoded.
func (p *peer) encode(m SignalMessage) []byte {
	m.V = SignalVersion
	b, err := m.Encode()
	if err != nil {
		p.log.Error("encode signal", "type", m.Type, "err", err)
		return nil
	}
	return b
}

// send queues an encoded signal (nil: nothing).
func (p *peer) send(b []byte) {
	if b != nil {
		p.out.push(b)
	}
}
