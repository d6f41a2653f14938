// ice_session.go holds one ICE session: a pion agent with one set of credentials, how it is
// configured, its callbacks wired to the peer's event queue, its connectivity checks, the data
// that arrives over its relayed pair, and its end.

package natt

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/pion/ice/v4"
)

// maxSessionCands bounds the remote candidates one session accepts.
const maxSessionCands = 64

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
	// checksFrom is when the checks had a remote candidate to work on: the fast-fallback looks
	// (relay_fallback.go) count from it.
	checksFrom time.Time
	// slow fires if the checks have not found a pair troubleAfter after they began; it is
	// stopped when the session connects or closes.
	slow *time.Timer
}

// live reports whether session s (nil: none) has a working pair.
func (s *session) live() bool {
	return s != nil && (s.state == ice.ConnectionStateConnected || s.state == ice.ConnectionStateCompleted)
}

// stopSlow stops the session's slow-checks timer.
func (s *session) stopSlow() {
	if s.slow != nil {
		s.slow.Stop()
	}
}

// close closes the session's agent (what was the current or the kept session).
func (s *session) close() error {
	s.stopSlow()
	return s.agent.GracefulClose()
}

// newSession creates an agent for session id and wires its callbacks to the event queue.
func (p *peer) newSession(id string, offerer, upgrade bool) (*session, error) {
	need := p.relayNeed(upgrade)
	relay, why := need.wanted()
	a, err := p.m.newAgent(relay, need.nominationWait())
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
		return nil, fmt.Errorf("natt: ICE agent callbacks: %w", err)
	}
	return s, nil
}

// creds returns the session's local ufrag and pwd.
func (p *peer) creds(s *session) (ufrag, pwd string) {
	ufrag, pwd, err := s.agent.GetLocalUserCredentials()
	if err != nil {
		p.log.Warn("local credentials", "err", err)
	}
	return ufrag, pwd
}

func (p *peer) gather(s *session) {
	if err := s.agent.GatherCandidates(); err != nil {
		p.log.Warn("gather candidates", "session", s.id, "err", err)
	}
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
	p.note(statusEvent{kind: statusChecking})
	for _, c := range slices.Concat(s.pending, p.memory.take(s.id)) {
		p.addRemote(s, c)
	}
	s.pending = nil
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
	if s.checksFrom.IsZero() {
		// The checks have something to work on: from now on, no word from the peer for long
		// means a direct pair is unlikely (see onFallbackTimer).
		s.checksFrom = time.Now()
		p.armFallback(s, noProgressAfter)
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

// endSession closes the current agent and remembers its session as ended. It does not report
// the path as lost: a new session may keep it, and WireGuard keeps using it meanwhile.
func (p *peer) endSession() {
	s := p.sess
	if s == nil {
		return
	}
	p.sess = nil
	p.memory.end(s.id)
	if p.timerKind == timerOffer {
		p.clearTimer()
	}
	if err := s.close(); err != nil {
		p.log.Debug("close agent", "session", s.id, "err", err)
	}
}

// newAgent makes an agent for one session; relay says whether it gathers relayed candidates
// (makes TURN allocations), relayWait how long pion waits before it nominates a relayed pair.
func (m *Manager) newAgent(relay bool, relayWait time.Duration) (*ice.Agent, error) {
	networks := []ice.NetworkType{ice.NetworkTypeUDP4}
	turnTransports := []ice.NetworkType{ice.NetworkTypeUDP4, ice.NetworkTypeTCP4}
	if m.cfg.IPv6 {
		networks = append(networks, ice.NetworkTypeUDP6)
		turnTransports = append(turnTransports, ice.NetworkTypeUDP6, ice.NetworkTypeTCP6)
	}
	// Candidate types: their type preferences (host > prflx > srflx > relay) make ICE prefer
	// any working direct pair, and pion nominates a relayed pair only after relayWait (see
	// relayNeed.nominationWait). Relayed candidates come from TURN allocations pion makes on
	// sockets of its own (not the shared one). Without relay the TURN servers stay in the list:
	// they answer STUN, for server-reflexive candidates, and pion allocates only for the relay
	// type.
	types := []ice.CandidateType{ice.CandidateTypeHost, ice.CandidateTypeServerReflexive}
	urls := m.stunURLs()
	if turn := m.turnURLs(); len(turn) > 0 {
		urls = append(slices.Clip(urls), turn...)
		switch {
		case m.relayOnly.Load():
			types = []ice.CandidateType{ice.CandidateTypeRelay}
			urls = turn
		case relay:
			types = append(types, ice.CandidateTypeRelay)
		}
	}
	if m.relayOnly.Load() {
		relayWait = 0 // nothing better can show up
	}
	opts := []ice.AgentOption{
		ice.WithNetworkTypes(networks),
		ice.WithCandidateTypes(types),
		ice.WithTURNTransportProtocols(turnTransports),
		ice.WithUDPMux(m.mux),
		ice.WithUDPMuxSrflx(m.mux),
		ice.WithUrls(urls),
		ice.WithNet(m.net),
		// A direct pair is nominated as soon as it is valid (pion's defaults wait 500 ms for a
		// server-reflexive and 1 s for a peer-reflexive pair, in case a better one validates):
		// the best pair valid at that moment is taken, host pairs validate first where they
		// work, and a path is worth more now than a slightly better one later.
		ice.WithHostAcceptanceMinWait(0),
		ice.WithSrflxAcceptanceMinWait(0),
		ice.WithPrflxAcceptanceMinWait(0),
		ice.WithRelayAcceptanceMinWait(relayWait),
		ice.WithMulticastDNSMode(ice.MulticastDNSModeDisabled),
		ice.WithKeepaliveInterval(m.cfg.KeepaliveInterval),
		ice.WithDisconnectedTimeout(m.cfg.DisconnectedTimeout),
		ice.WithFailedTimeout(m.cfg.FailedTimeout),
		ice.WithCheckInterval(m.cfg.CheckInterval),
		ice.WithMaxBindingRequests(maxBindingRequests(m.cfg.CheckInterval)),
		ice.WithSTUNGatherTimeout(5 * time.Second),
		ice.WithLoggerFactory(pionLoggerFactory{m.log}),
	}
	if m.cfg.IncludeLoopback {
		opts = append(opts, ice.WithIncludeLoopback())
	}
	if m.cfg.IPFilter != nil {
		f := m.cfg.IPFilter
		opts = append(opts, ice.WithIPFilter(func(ip net.IP) bool {
			a, ok := netip.AddrFromSlice(ip)
			return ok && f(a.Unmap())
		}))
	}
	if m.cfg.InterfaceFilter != nil {
		opts = append(opts, ice.WithInterfaceFilter(m.cfg.InterfaceFilter))
	}
	a, err := ice.NewAgentWithOptions(opts...)
	if err != nil {
		return nil, fmt.Errorf("natt: new ICE agent: %w", err)
	}
	return a, nil
}

// pairCheckSpan is how long pion checks one candidate pair before it gives up on it: its
// default, 7 requests at its default 200 ms pacing.
const pairCheckSpan = 1400 * time.Millisecond

// maxBindingRequests keeps a pair checked for pairCheckSpan whatever the pacing: checks sent
// faster (to nominate sooner) must not give up on a pair sooner, across a NAT that takes a few
// tries.
func maxBindingRequests(interval time.Duration) uint16 {
	n := int(pairCheckSpan / interval)
	return uint16(min(max(n, 7), 1000))
}
