package mesh

// This file holds what the Bind does to make a peer's first handshake quick: it keeps
// initiations from keys that are not peers yet and replays them when the key is added, decides
// which side starts a handshake, and breaks the tie when both sides start one at once.

import (
	"bytes"
	"net/netip"
	"sync"
	"time"

	"github.com/nexodus-sdk/nexodus/key"
)

const (
	maxHeldInitiations = 64 // initiations from keys that are not (yet) peers, kept for replay

	// heldInitiationTTL is how long an initiation from a not-yet-known key is kept for replay:
	// wireguard-go's REKEY_TIMEOUT, after which the initiator sends a fresh one anyway.
	heldInitiationTTL = 5 * time.Second
	// crossingWindow and crossingHold shape the tie-break for crossing handshakes (see
	// bind.holdCrossingInitiation).
	crossingWindow = time.Second
	crossingHold   = 250 * time.Millisecond
)

// heldInitiation is a handshake initiation from a key that was not a peer when it arrived.
type heldInitiation struct {
	pkt [sizeInitiation]byte
	src netip.AddrPort
	at  time.Time
}

// heldInitiations is the initiations kept for replay. mu guards the map and every peer's
// active flag, so that an initiation arriving while its peer is activated is either held and
// replayed by activate, or passed on to wireguard-go — never held after activate looked.
type heldInitiations struct {
	mu    sync.Mutex
	byKey map[key.Key]heldInitiation
}

func newHeldInitiations() heldInitiations {
	return heldInitiations{byKey: make(map[key.Key]heldInitiation)}
}

// hold keeps pkt, an initiation from pub, unless p (nil for a key that is no peer) is active:
// if the key becomes an active peer within heldInitiationTTL, the initiation is replayed to
// wireguard-go (bind.activate), so the handshake completes at once instead of after the
// initiator's 5-second retry. It reports whether it kept the packet (or dropped it, the store
// being full of fresh ones); false means p is active and the packet goes on to wireguard-go.
func (h *heldInitiations) hold(p *peerState, pub key.Key, pkt []byte, src netip.AddrPort) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p != nil && p.active {
		return false
	}
	now := time.Now()
	if _, ok := h.byKey[pub]; !ok && len(h.byKey) >= maxHeldInitiations {
		for k, held := range h.byKey {
			if now.Sub(held.at) > heldInitiationTTL {
				delete(h.byKey, k)
			}
		}
		if len(h.byKey) >= maxHeldInitiations {
			return true
		}
	}
	held := heldInitiation{src: src, at: now}
	copy(held.pkt[:], pkt)
	h.byKey[pub] = held
	return true
}

// activate marks p active and takes pub's held initiation; fresh reports whether there is one
// young enough to replay. Without one, and if initiate, it announces an initiation to p to the
// crossing tie-break (under the lock, so an initiation of p that finds p active also finds
// the announcement).
func (h *heldInitiations) activate(p *peerState, pub key.Key, initiate bool) (held heldInitiation, fresh bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	held, ok := h.byKey[pub]
	delete(h.byKey, pub)
	fresh = ok && time.Since(held.at) <= heldInitiationTTL
	if p != nil {
		if !fresh && initiate {
			p.crossMu.Lock()
			p.cross.expect(time.Now())
			p.crossMu.Unlock()
		}
		p.active = true
	}
	return held, fresh
}

// activate marks a peer as running in wireguard-go and replays its held initiation, if there is
// a fresh one. It reports whether it replayed one; if not, the caller starts a handshake when
// this node is the preferred initiator, and activate already announces that initiation, so
// that an initiation of the peer arriving in between is treated as crossing.
func (b *bind) activate(pub key.Key) bool {
	held, fresh := b.held.activate(b.peer(pub), pub, b.preferredInitiator(pub))
	if !fresh {
		return false
	}
	return b.injectPacket(held.pkt[:], held.src)
}

// preferredInitiator reports whether this node starts handshakes with the peer on its own (when
// the peer is added): the side with the smaller public key does, so that both sides do not
// start at once.
func (b *bind) preferredInitiator(peer key.Key) bool {
	return bytes.Compare(b.pub[:], peer[:]) < 0
}

// holdCrossingInitiation breaks the tie when both sides start a handshake at once.
// wireguard-go processes handshake messages on several goroutines: the peer's initiation
// processed at the same time as the response to our own initiation can leave the two sides with
// different sessions (traffic then stalls until a timer re-handshakes 15 s later), and our own
// initiation created while the peer's is being answered cancels the answer (a 5 s stall).
//
// So the side with the smaller public key holds the peer's initiation back while its own is
// less than crossingWindow old and unanswered — announced by activate, or sent. If the response
// to ours arrives within crossingHold, the held initiation is discarded: one handshake, no
// crossing. If ours turns out to have gone nowhere (no path to the peer yet, see
// initiationSent), the held one is replayed at once: nothing can cross it, and waiting would
// only delay the first packet. Otherwise (ours was lost, or the peer could not answer it) the
// held one is replayed crossingHold late instead of 5 s.
func (b *bind) holdCrossingInitiation(p *peerState, pkt []byte, src netip.AddrPort) bool {
	if !b.preferredInitiator(p.key) {
		return false
	}
	p.crossMu.Lock()
	decision, gen := p.cross.peerInitiation(time.Now(), pkt, src)
	p.crossMu.Unlock()
	switch decision {
	case crossDrop:
		return true
	case crossHold:
		b.log.Debug("crossing handshake: holding peer's initiation, ours is in flight", "peer", p.hex[:8])
		time.AfterFunc(crossingHold, func() {
			p.crossMu.Lock()
			r, ok := p.cross.expired(gen)
			p.crossMu.Unlock()
			if ok {
				b.log.Debug("crossing handshake: ours unanswered, replaying peer's initiation", "peer", p.hex[:8])
				b.injectPacket(r.pkt, r.src)
			}
		})
		return true
	}
	return false
}

// initiationSent tells the tie-break whether our initiation to p went out; one that went
// nowhere releases the peer's held initiation at once.
func (b *bind) initiationSent(p *peerState, ok bool) {
	p.crossMu.Lock()
	r, replay := p.cross.initiationSent(time.Now(), ok)
	p.crossMu.Unlock()
	if replay {
		b.log.Debug("crossing handshake: ours found no path, replaying peer's initiation", "peer", p.hex[:8])
		b.injectPacket(r.pkt, r.src)
	}
}

// initiationAnswered tells the tie-break that the peer answered our initiation.
func (b *bind) initiationAnswered(p *peerState) {
	p.crossMu.Lock()
	p.cross.answered()
	p.crossMu.Unlock()
}
