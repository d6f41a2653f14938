package mesh

// This file holds the crossing tie-break's state for one peer as a pure state machine: where
// our own initiation to the peer stands and which of the peer's initiations is held back. The
// Bind feeds it events with the time (bind.holdCrossingInitiation and friends in handshake.go)
// and carries out what it returns; see bind.holdCrossingInitiation for why the tie-break
// exists.

import (
	"bytes"
	"net/netip"
	"time"
)

// crossing is one peer's tie-break state. The zero value is a peer with no initiation of ours
// in flight and nothing held.
type crossing struct {
	// expected is when activate announced an initiation of ours that Send has not seen yet
	// (zero if none): from the moment the peer runs in wireguard-go until our initiation is
	// built, the peer's initiation must already count as crossing.
	expected time.Time
	// sent is when our last initiation actually went out (zero once answered): to an address,
	// or to the relay. An initiation that found no path is not in flight and holds nothing.
	sent time.Time

	held    []byte // the peer's initiation held back; nil if none
	heldSrc netip.AddrPort
	gen     uint64 // counts holds: the timer of an earlier hold finds another generation
}

// crossReplay is a held initiation to hand to wireguard-go now.
type crossReplay struct {
	pkt []byte
	src netip.AddrPort
}

// inFlight reports whether an initiation of ours may be on its way at now: announced or sent
// less than crossingWindow ago, and not answered.
func (c *crossing) inFlight(now time.Time) bool {
	return within(c.expected, now, crossingWindow) || within(c.sent, now, crossingWindow)
}

func within(t, now time.Time, d time.Duration) bool { return !t.IsZero() && now.Sub(t) <= d }

// expect records that an initiation of ours is about to be built (activate, for the preferred
// initiator).
func (c *crossing) expect(now time.Time) { c.expected = now }

// initiationSent records the outcome of sending one of our initiations: ok if it went out. An
// initiation that went nowhere leaves no reason to hold the peer's: if one is held and no
// earlier initiation of ours is still in flight, it is returned for replay at once.
func (c *crossing) initiationSent(now time.Time, ok bool) (crossReplay, bool) {
	c.expected = time.Time{}
	if ok {
		c.sent = now
		return crossReplay{}, false
	}
	if c.held == nil || c.inFlight(now) {
		return crossReplay{}, false
	}
	return c.takeHeld(), true
}

// answered records that the peer answered our initiation: nothing of ours is in flight, and a
// held initiation of the peer is dropped (one handshake, no crossing).
func (c *crossing) answered() {
	c.expected, c.sent = time.Time{}, time.Time{}
	c.held = nil
}

// crossDecision is what to do with an initiation of the peer.
type crossDecision int

const (
	crossPass crossDecision = iota // hand it to wireguard-go
	crossHold                      // held: arm a timer of crossingHold for generation gen
	crossDrop                      // one is held already; the peer's retries are copies
)

// peerInitiation decides about an initiation of the peer that arrived at now from src; the
// caller has checked that this node is the preferred initiator. On crossHold it returns the
// hold's generation for the timer (expired).
func (c *crossing) peerInitiation(now time.Time, pkt []byte, src netip.AddrPort) (crossDecision, uint64) {
	if !c.inFlight(now) {
		return crossPass, 0
	}
	if c.held != nil {
		return crossDrop, 0
	}
	c.held, c.heldSrc = bytes.Clone(pkt), src
	c.gen++
	return crossHold, c.gen
}

// expired is the timer of hold gen: if that hold still stands (ours was not answered, nor
// given up), the held initiation is returned for replay.
func (c *crossing) expired(gen uint64) (crossReplay, bool) {
	if gen != c.gen || c.held == nil {
		return crossReplay{}, false
	}
	return c.takeHeld(), true
}

func (c *crossing) takeHeld() crossReplay {
	r := crossReplay{pkt: c.held, src: c.heldSrc}
	c.held, c.heldSrc = nil, netip.AddrPort{}
	return r
}

// heldNow reports whether an initiation of the peer is held (tests).
func (c *crossing) heldNow() bool { return c.held != nil }
