package mesh

import (
	"time"

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

// handshakeRetry is the early-retry state of one peer. Guarded by Mesh.retryMu.
type handshakeRetry struct {
	timer *time.Timer
	next  int // index into handshakeRetries of the next retry
}

// initiationSent is the Bind's report that an initiation to the peer went out: it arms the
// next early retry, unless one is armed or all were used since the peer last answered.
func (m *Mesh) initiationSent(key [32]byte) {
	m.retryMu.Lock()
	defer m.retryMu.Unlock()
	if m.closed.Load() {
		return
	}
	r := m.retries[key]
	if r == nil {
		r = &handshakeRetry{}
		m.retries[key] = r
	}
	if r.timer != nil || r.next >= len(handshakeRetries) {
		return
	}
	r.timer = time.AfterFunc(handshakeRetries[r.next], func() { m.retryHandshake(key, r) })
}

// initiationAnswered is the Bind's report that the peer answered an initiation: the next
// unanswered one starts the early retries afresh.
func (m *Mesh) initiationAnswered(key [32]byte) {
	m.stopRetries(key)
}

// retryHandshake sends a fresh initiation if the peer still has not answered and has no
// session. It holds m.mu, as SetPeers does when it starts a handshake, so that it never runs
// across Close; the initiation it sends reports back through initiationSent, which takes only
// retryMu.
func (m *Mesh) retryHandshake(key [32]byte, r *handshakeRetry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.retryMu.Lock()
	current := m.retries[key] == r
	if current {
		r.timer = nil
		r.next++
	}
	m.retryMu.Unlock()
	if m.closed.Load() || !current {
		return
	}
	p := m.bind.peer(key)
	if p == nil || p.initSentAt.Load() == 0 || m.hasSession(key) {
		return
	}
	wp := m.dev.LookupPeer(device.NoisePublicKey(key))
	if wp == nil {
		return
	}
	m.log.Debug("handshake unanswered, retrying early", "peer", p.hexKey[:8])
	// Expiring lifts wireguard-go's own limit of one initiation per 5 s; there is no session
	// to lose.
	wp.ExpireCurrentKeypairs()
	wp.SendKeepalive()
	m.earlyRetries.Add(1)
}

// stopRetries stops the early-retry timers of the given peers (removal, a fresh handshake).
func (m *Mesh) stopRetries(keys ...[32]byte) {
	m.retryMu.Lock()
	defer m.retryMu.Unlock()
	for _, k := range keys {
		m.stopRetryLocked(k)
	}
}

// stopAllRetries stops every early-retry timer (Close).
func (m *Mesh) stopAllRetries() {
	m.retryMu.Lock()
	defer m.retryMu.Unlock()
	for k := range m.retries {
		m.stopRetryLocked(k)
	}
}

func (m *Mesh) stopRetryLocked(k [32]byte) {
	if r := m.retries[k]; r != nil && r.timer != nil {
		r.timer.Stop()
	}
	delete(m.retries, k)
}
