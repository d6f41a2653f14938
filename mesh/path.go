package mesh

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// pathSelector decides where a peer's WireGuard packets go. It knows the addresses the peer
// published (candidates: LAN and reflexive addresses from the coordinator) and the current path,
// once there is one:
//
//   - no current path: packets go to every candidate, so that whichever one works carries the
//     handshake;
//   - the first address from which wireguard-go accepts a packet of the peer becomes the current
//     path (learn), and afterwards packets go there only;
//   - SetPeerPath pins the path explicitly (pin); NAT traversal and the relay use that;
//   - a peer that roams (an authenticated packet from a new address) moves the path there, as
//     WireGuard itself does;
//   - when the published candidates change and the current path is not among them (and was not
//     pinned), the path is forgotten and the new candidates are tried;
//   - SetPeerRelay makes a relay route (a send function, e.g. a TURN allocation) the path
//     (setRelay). A relay route is not an address and is left only explicitly: pin (any
//     address, even none) or setRelay(nil), which goes back to the candidates. While relayed,
//     learn does nothing: a packet of the peer arriving on the socket does not move the path.
//
// Every pin bumps an epoch. An observation made before a pin (a packet that was already in
// wireguard-go's queues) cannot undo the pin: learn ignores stale epochs.
//
// Reads are lock-free (one atomic load per packet); writes take a mutex and publish a new
// snapshot.
type pathSelector struct {
	mu   sync.Mutex
	snap atomic.Pointer[pathSnapshot]
}

type pathSnapshot struct {
	candidates []netip.AddrPort
	current    netip.AddrPort // valid when the path is confirmed or pinned
	pinned     bool
	relay      *relayRoute // non-nil: packets go through the relay route, not the socket
	epoch      uint64
	since      time.Time // when current (or relay) was set
}

// relayRoute is a path that is not an address on the socket: a function that carries a
// WireGuard message to the peer some other way (a TURN relay).
type relayRoute struct {
	send func(b []byte) error
}

var emptySnapshot = &pathSnapshot{}

func (p *pathSelector) load() *pathSnapshot {
	if s := p.snap.Load(); s != nil {
		return s
	}
	return emptySnapshot
}

// targets returns where to send: the current path, or all candidates while there is none. The
// returned slice must not be modified. It does not know relay routes; see route.
func (p *pathSelector) targets() (current netip.AddrPort, candidates []netip.AddrPort) {
	return p.load().targets()
}

// route returns the relay route when the path is one, else what targets returns, from one
// snapshot.
func (p *pathSelector) route() (relay *relayRoute, current netip.AddrPort, candidates []netip.AddrPort) {
	s := p.load()
	if s.relay != nil {
		return s.relay, netip.AddrPort{}, nil
	}
	current, candidates = s.targets()
	return nil, current, candidates
}

func (s *pathSnapshot) targets() (current netip.AddrPort, candidates []netip.AddrPort) {
	if s.current.IsValid() {
		return s.current, nil
	}
	return netip.AddrPort{}, s.candidates
}

// relayed reports whether the path is a relay route.
func (p *pathSelector) relayed() bool { return p.load().relay != nil }

// current returns the current path (invalid when none is confirmed yet).
func (p *pathSelector) current() netip.AddrPort { return p.load().current }

// epoch returns the pin epoch.
func (p *pathSelector) epoch() uint64 { return p.load().epoch }

// status returns the current path, whether it is pinned, whether it is a relay route (current
// is then invalid) and since when it is in use.
func (p *pathSelector) status() (current netip.AddrPort, pinned, relayed bool, since time.Time) {
	s := p.load()
	return s.current, s.pinned, s.relay != nil, s.since
}

// setCandidates replaces the published addresses. It reports whether the current path was
// dropped because the peer no longer publishes it.
func (p *pathSelector) setCandidates(c []netip.AddrPort) (reset bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.load()
	if slices.Equal(old.candidates, c) {
		return false
	}
	n := *old
	n.candidates = slices.Clone(c)
	if n.current.IsValid() && !n.pinned && !slices.Contains(n.candidates, n.current) {
		n.current = netip.AddrPort{}
		n.since = time.Time{}
		reset = true
	}
	p.snap.Store(&n)
	return reset
}

// pin makes addr the path until the peer roams or the path is pinned again. An invalid addr
// removes the pin and the current path: packets go to the candidates again.
func (p *pathSelector) pin(addr netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := *p.load()
	n.current = addr
	n.pinned = addr.IsValid()
	n.relay = nil
	n.epoch++
	n.since = time.Now()
	if !addr.IsValid() {
		n.since = time.Time{}
	}
	p.snap.Store(&n)
}

// setRelay makes send the path (a relay route); nil leaves the relay route for the socket, with
// no current path: packets go to the candidates until one answers (as pin with no address).
func (p *pathSelector) setRelay(send func(b []byte) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := *p.load()
	n.current = netip.AddrPort{}
	n.pinned = false
	n.relay = nil
	n.since = time.Time{}
	if send != nil {
		n.relay = &relayRoute{send: send}
		n.since = time.Now()
	}
	n.epoch++
	p.snap.Store(&n)
}

// learn records that wireguard-go accepted a packet from addr, observed at the given epoch. It
// reports whether the current path changed.
func (p *pathSelector) learn(addr netip.AddrPort, epoch uint64) bool {
	if !addr.IsValid() {
		return false
	}
	if s := p.load(); s.current == addr || s.epoch != epoch || s.relay != nil {
		return false // fast path: nothing to do
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.load()
	if old.current == addr || old.epoch != epoch || old.relay != nil {
		return false
	}
	n := *old
	n.current = addr
	n.since = time.Now()
	p.snap.Store(&n)
	return true
}
