// relay_handover.go holds the handover of a relayed path between sessions. A direct path
// outlives its session (WireGuard sends to its address on the shared socket), but a relayed one
// lives only as long as its session's agent and TURN allocation: a session replaced while its
// relayed pair carries the traffic is kept open until its successor has a pair, and becomes
// current again if the successor fails.

package natt

import "github.com/pion/ice/v4"

// retire makes way for a new session. A session whose relayed pair carries the peer's traffic
// is kept open (p.keep) until the new session selects a pair (then closed after keepGrace) or
// fails (then it is the current session again). Any other session is ended.
func (p *peer) retire() {
	s := p.sess
	if !s.live() || !p.path.Valid() || p.path.Send == nil || p.path.session != s.id {
		p.endSession()
		return
	}
	p.closeKeep()
	p.sess = nil
	p.memory.end(s.id)
	if p.timerKind == timerOffer || p.timerKind == timerUpgrade {
		p.clearTimer()
	}
	p.keep = s
	p.log.Debug("keeping the relayed session while a new one starts", "session", s.id)
}

// keepCarriesPath reports whether the kept session's relayed pair is the reported path.
func (p *peer) keepCarriesPath() bool {
	k := p.keep
	return k != nil && p.path.Valid() && p.path.session == k.id
}

// closeKeep closes the kept session, if any.
func (p *peer) closeKeep() {
	k := p.keep
	if k == nil {
		return
	}
	p.keep = nil
	p.keepTimer.Stop()
	if err := k.close(); err != nil {
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
	p.memory.revive(k.id)
	p.sess = k
	p.note(statusEvent{kind: statusResumed, session: k.id})
	p.armUpgrade()
}

// onKeptState follows the kept relayed session: if it fails while its successor is still
// looking for a pair, its path is lost.
func (p *peer) onKeptState(k *session, st ice.ConnectionState) {
	k.state = st
	switch st {
	case ice.ConnectionStateDisconnected, ice.ConnectionStateFailed, ice.ConnectionStateClosed:
		const reason = "relayed session lost"
		p.log.Info("replaced relayed session lost", "session", k.id, "state", st.String())
		p.closeKeep()
		if p.path.Valid() && p.path.session == k.id {
			p.log.Info("ICE path lost", "reason", reason, "session", k.id)
			p.reportPath(Path{})
			p.note(statusEvent{kind: statusKeptLost, reason: reason})
		}
	}
}
