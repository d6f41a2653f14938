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
//     pinned), the path is forgotten and the new candidates are tried.
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
	epoch      uint64
	since      time.Time // when current was set
}

var emptySnapshot = &pathSnapshot{}

func (p *pathSelector) load() *pathSnapshot {
	if s := p.snap.Load(); s != nil {
		return s
	}
	return emptySnapshot
}

// targets returns where to send: the current path, or all candidates while there is none. The
// returned slice must not be modified.
func (p *pathSelector) targets() (current netip.AddrPort, candidates []netip.AddrPort) {
	s := p.load()
	if s.current.IsValid() {
		return s.current, nil
	}
	return netip.AddrPort{}, s.candidates
}

// current returns the current path (invalid when none is confirmed yet).
func (p *pathSelector) current() netip.AddrPort { return p.load().current }

// epoch returns the pin epoch.
func (p *pathSelector) epoch() uint64 { return p.load().epoch }

// status returns the current path, whether it is pinned and since when it is in use.
func (p *pathSelector) status() (current netip.AddrPort, pinned bool, since time.Time) {
	s := p.load()
	return s.current, s.pinned, s.since
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
	n.epoch++
	n.since = time.Now()
	if !addr.IsValid() {
		n.since = time.Time{}
	}
	p.snap.Store(&n)
}

// learn records that wireguard-go accepted a packet from addr, observed at the given epoch. It
// reports whether the current path changed.
func (p *pathSelector) learn(addr netip.AddrPort, epoch uint64) bool {
	if !addr.IsValid() {
		return false
	}
	if s := p.load(); s.current == addr || s.epoch != epoch {
		return false // fast path: nothing to do
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.load()
	if old.current == addr || old.epoch != epoch {
		return false
	}
	n := *old
	n.current = addr
	n.since = time.Now()
	p.snap.Store(&n)
	return true
}
