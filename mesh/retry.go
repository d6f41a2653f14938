package mesh

// This file holds the early retries of unanswered handshake initiations: the timers
// (handshakeRetrier) and what the Mesh does when one fires (Mesh.retryHandshake).

import (
	"sync"
	"time"

	"github.com/nexodus-sdk/nexodus/key"
	"golang.zx2c4.com/wireguard/device"
)

// wireguard-go retransmits an unanswered handshake initiation after REKEY_TIMEOUT, 5 seconds.
// For a peer that has a session that is what WireGuard intends. For a peer without one — just
// added, restarted, or on a path NAT traversal found a moment ago — it is a 5-second stall of
// the first packet whenever one initiation is lost: dropped by a NAT whose mapping was not open
// yet, or refused by the peer's flood protection (it takes at most one initiation per peer per
// 20 ms, and a peer that restarts within that time of its last handshake has its first refused).
// So an initiation to a peer without a session gets early retries, after 1 and then 2 more
// seconds, before wireguard-go's own retransmission takes over.
var handshakeRetries = []time.Duration{time.Second, 2 * time.Second}

// handshakeRetrier arms the early retries of every peer. Each initiation that goes out (sent)
// arms the peer's next retry unless one is armed already or all were used since the peer last
// answered (answered, stop). retry runs on the timer's goroutine with serialize held, so that
// it never runs across what the owner does under that lock (the Mesh's SetPeers and Close).
type handshakeRetrier struct {
	delays    []time.Duration
	serialize sync.Locker
	retry     func(pub key.Key)

	mu     sync.Mutex // guards closed and peers
	closed bool
	peers  map[key.Key]*retryState
}

// retryState is the early-retry state of one peer.
type retryState struct {
	timer *time.Timer
	next  int // index into delays of the next retry
}

func newHandshakeRetrier(delays []time.Duration, serialize sync.Locker, retry func(key.Key)) *handshakeRetrier {
	return &handshakeRetrier{delays: delays, serialize: serialize, retry: retry, peers: make(map[key.Key]*retryState)}
}

// sent reports that an initiation to the peer went out: it arms the next early retry.
func (r *handshakeRetrier) sent(pub key.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	st := r.peers[pub]
	if st == nil {
		st = &retryState{}
		r.peers[pub] = st
	}
	if st.timer != nil || st.next >= len(r.delays) {
		return
	}
	st.timer = time.AfterFunc(r.delays[st.next], func() { r.fire(pub, st) })
}

// fire is st's timer: it calls retry unless st was stopped meanwhile.
func (r *handshakeRetrier) fire(pub key.Key, st *retryState) {
	r.serialize.Lock()
	defer r.serialize.Unlock()
	r.mu.Lock()
	current := !r.closed && r.peers[pub] == st
	if current {
		st.timer = nil
		st.next++
	}
	r.mu.Unlock()
	if current {
		r.retry(pub)
	}
}

// answered reports that the peer answered an initiation: the next unanswered one starts the
// early retries afresh.
func (r *handshakeRetrier) answered(pub key.Key) { r.stop(pub) }

// stop forgets the peers' retries (the peer answered, was removed, or gets a fresh handshake):
// the next initiation to them starts the early retries afresh.
func (r *handshakeRetrier) stop(pubs ...key.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range pubs {
		r.stopLocked(k)
	}
}

// close stops every retry for good.
func (r *handshakeRetrier) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for k := range r.peers {
		r.stopLocked(k)
	}
}

func (r *handshakeRetrier) stopLocked(pub key.Key) {
	if st := r.peers[pub]; st != nil && st.timer != nil {
		st.timer.Stop()
	}
	delete(r.peers, pub)
}

// retryHandshake is the Mesh's early retry, run with m.mu held (handshakeRetrier.serialize): it
// sends a fresh initiation if the peer still has not answered and has no session. The
// initiation it sends reports back through handshakeRetrier.sent, which takes only the
// retrier's own lock.
func (m *Mesh) retryHandshake(pub key.Key) {
	if m.closed.Load() {
		return
	}
	p := m.bind.peer(pub)
	if p == nil || p.initSentAt.Load() == 0 || m.hasSession(pub) {
		return
	}
	wp := m.dev.LookupPeer(device.NoisePublicKey(pub))
	if wp == nil {
		return
	}
	m.log.Debug("handshake unanswered, retrying early", "peer", p.hex[:8])
	// Expiring lifts wireguard-go's own limit of one initiation per 5 s; there is no session
	// to lose.
	wp.ExpireCurrentKeypairs()
	wp.SendKeepalive()
	m.earlyRetries.Add(1)
}
