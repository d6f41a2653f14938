// manager_helpers_test.go holds the harness of the Manager tests: signaling between Managers
// (link), what OnPath reported (pathLog), and test peers on real sockets or on a memNet.

package natt

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/key"
)

// pollInterval is how often the tests on real sockets look at a condition they wait for.
const pollInterval = 10 * time.Millisecond

// sentSignal is one signal a Manager sent.
type sentSignal struct {
	at       time.Time
	from, to string
	msg      SignalMessage
}

// link delivers signals between Managers by peer ID, like the coordinator's signaling would,
// and logs them. cut stops delivery from a peer (a crashed node says nothing).
type link struct {
	mu   sync.Mutex
	mgrs map[string]*Manager
	cut  map[string]bool
	sent []sentSignal
}

func newLink() *link {
	return &link{mgrs: map[string]*Manager{}, cut: map[string]bool{}}
}

// signals returns the signals of type typ that from sent, oldest first.
func (l *link) signals(from string, typ SignalType) []sentSignal {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []sentSignal
	for _, s := range l.sent {
		if s.from == from && s.msg.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

func (l *link) count(from string, typ SignalType) int { return len(l.signals(from, typ)) }

func (l *link) signalFrom(from string) func(ctx context.Context, to string, b []byte) error {
	return func(ctx context.Context, to string, b []byte) error {
		l.mu.Lock()
		m, cut := l.mgrs[to], l.cut[from]
		if msg, err := DecodeSignal(b); err == nil && !cut {
			l.sent = append(l.sent, sentSignal{at: time.Now(), from: from, to: to, msg: msg})
		}
		l.mu.Unlock()
		if cut {
			return errors.New("link cut")
		}
		if m == nil {
			return errors.New("no such peer")
		}
		return m.HandleSignal(from, b)
	}
}

func (l *link) setCut(id string, v bool) {
	l.mu.Lock()
	l.cut[id] = v
	l.mu.Unlock()
}

// pathLog records OnPath calls.
type pathLog struct {
	mu    sync.Mutex
	calls []Path
	times []time.Time
}

func (p *pathLog) record(_ string, _ key.Key, path Path) {
	p.mu.Lock()
	p.calls = append(p.calls, path)
	p.times = append(p.times, time.Now())
	p.mu.Unlock()
}

// last returns the last path reported and the number of calls so far.
func (p *pathLog) last() (Path, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.calls) == 0 {
		return Path{}, 0
	}
	return p.calls[len(p.calls)-1], len(p.calls)
}

// lostAt returns when the first "no path" call after the first n calls was made.
func (p *pathLog) lostAt(n int) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := min(n, len(p.calls)); i < len(p.calls); i++ {
		if !p.calls[i].Valid() {
			return p.times[i], true
		}
	}
	return time.Time{}, false
}

// lostAfter reports whether the path was reported lost after the first n calls.
func (p *pathLog) lostAfter(n int) bool {
	_, lost := p.lostAt(n)
	return lost
}

// testPeer is one node's Manager with what the tests need around it.
type testPeer struct {
	id    string
	key   key.Key
	addr  netip.AddrPort // where the others reach its socket
	node  *testNode      // its real socket; nil on a memNet
	mgr   *Manager
	paths *pathLog
}

func fastConfig() Config {
	return Config{
		IncludeLoopback:     true,
		KeepaliveInterval:   100 * time.Millisecond,
		DisconnectedTimeout: 500 * time.Millisecond,
		FailedTimeout:       time.Second,
		CheckInterval:       50 * time.Millisecond,
		OfferTimeout:        300 * time.Millisecond,
		BackoffMin:          100 * time.Millisecond,
		BackoffMax:          time.Second,
	}
}

// newManagerPeer starts the Manager of node id, with key {keyByte}, on sock (reached at addr),
// signaling through l; tweak, when not nil, changes its configuration last.
func newManagerPeer(t *testing.T, l *link, sock *Socket, addr netip.AddrPort, tweak func(*Config), id string, keyByte byte, stunServers ...string) *testPeer {
	t.Helper()
	tp := &testPeer{id: id, key: key.Key{keyByte}, addr: addr, paths: &pathLog{}}
	cfg := fastConfig()
	cfg.LocalKey = tp.key
	cfg.Socket = sock
	cfg.STUNServers = stunServers
	cfg.Logger = testLogger(t).With("node", id)
	cfg.Signal = l.signalFrom(id)
	cfg.OnPath = tp.paths.record
	if tweak != nil {
		tweak(&cfg)
	}
	m, err := New(cfg)
	require.NoError(t, err)
	tp.mgr = m
	l.mu.Lock()
	l.mgrs[id] = m
	l.mu.Unlock()
	t.Cleanup(func() { _ = m.Close() })
	return tp
}

// newTestPeer is a test peer on a real socket of its own.
func newTestPeer(t *testing.T, l *link, id string, keyByte byte, stunServers ...string) *testPeer {
	t.Helper()
	return newTestPeerOn(t, l, newTestNode(t), nil, id, keyByte, stunServers...)
}

// newTestPeerOn is a test peer on node's real socket.
func newTestPeerOn(t *testing.T, l *link, node *testNode, tweak func(*Config), id string, keyByte byte, stunServers ...string) *testPeer {
	t.Helper()
	tp := newManagerPeer(t, l, node.sock, node.addr, tweak, id, keyByte, stunServers...)
	tp.node = node
	return tp
}

// newMemPeer is a test peer on a memNet Socket at addr, for tests in a synctest bubble.
func newMemPeer(t *testing.T, l *link, n *memNet, addr string, tweak func(*Config), id string, keyByte byte) *testPeer {
	t.Helper()
	sock := n.socket(t, addr)
	return newManagerPeer(t, l, sock, sock.LocalAddrPort(), tweak, id, keyByte)
}

// addEachOther makes a and b peers of each other.
func addEachOther(t *testing.T, a, b *testPeer) {
	t.Helper()
	require.NoError(t, a.mgr.AddPeer(b.id, b.key))
	require.NoError(t, b.mgr.AddPeer(a.id, a.key))
}

func status(m *Manager, peerID string) (PathStatus, bool) {
	for _, s := range m.Paths() {
		if s.PeerID == peerID {
			return s, true
		}
	}
	return PathStatus{}, false
}

// waitStatus waits until m's status of peerID satisfies ok, and returns it.
func waitStatus(t *testing.T, m *Manager, peerID string, timeout time.Duration, what string, ok func(PathStatus) bool) PathStatus {
	t.Helper()
	var st PathStatus
	require.Eventually(t, func() bool {
		s, found := status(m, peerID)
		if found && ok(s) {
			st = s
			return true
		}
		return false
	}, timeout, pollInterval, what)
	return st
}

// waitPathTo waits until a reports a connected path to b that satisfies ok, and returns it.
func waitPathTo(t *testing.T, a, b *testPeer, timeout time.Duration, what string, ok func(Path) bool) Path {
	t.Helper()
	var p Path
	require.Eventually(t, func() bool {
		p, _ = a.paths.last()
		st, _ := status(a.mgr, b.id)
		return p.Valid() && ok(p) && st.State == StateConnected && st.Path.samePair(p)
	}, timeout, pollInterval, a.id+": "+what)
	return p
}

// waitDirect waits until a reports a path to b's socket address.
func waitDirect(t *testing.T, a, b *testPeer) Path {
	t.Helper()
	return waitPathTo(t, a, b, 20*time.Second, "path to "+b.id, func(p Path) bool { return p.Remote == b.addr })
}

// waitDirectBoth waits until a and b report paths to each other's socket.
func waitDirectBoth(t *testing.T, a, b *testPeer) (pa, pb Path) {
	t.Helper()
	return waitDirect(t, a, b), waitDirect(t, b, a)
}

func connectPair(t *testing.T, l *link, stunServers ...string) (*testPeer, *testPeer) {
	t.Helper()
	a := newTestPeer(t, l, "a", 1, stunServers...)
	b := newTestPeer(t, l, "b", 2, stunServers...)
	addEachOther(t, a, b)
	pa, pb := waitDirectBoth(t, a, b)
	for _, p := range []Path{pa, pb} {
		require.False(t, p.Since.IsZero() || p.Relayed(), "path %+v, want a direct path", p)
		// With a STUN server on loopback the server-reflexive candidate has the host
		// candidate's address, and either may win.
		if len(stunServers) == 0 {
			require.Equal(t, CandidateHost, p.LocalType, "path %+v", p)
			require.Contains(t, []CandidateType{CandidateHost, CandidatePrflx}, p.RemoteType, "path %+v", p)
		}
	}
	return a, b
}

// mark is where a test peer's history with another stood at one moment.
type mark struct {
	PathStatus     // its status then
	paths      int // OnPath calls until then
}

func (tp *testPeer) mark(peerID string) mark {
	st, _ := status(tp.mgr, peerID)
	_, n := tp.paths.last()
	return mark{st, n}
}

// waitLost waits until tp reported its path to peerID lost after m, and then until its status
// satisfies then (a retry, say).
func (tp *testPeer) waitLost(t *testing.T, peerID string, m mark, timeout time.Duration, then func(PathStatus) bool) {
	t.Helper()
	require.Eventually(t, func() bool { return tp.paths.lostAfter(m.paths) }, timeout, pollInterval,
		"%s reports the path to %s lost", tp.id, peerID)
	waitStatus(t, tp.mgr, peerID, timeout, tp.id+" retries", then)
}

// handled returns how many signals m's peer peerID has processed.
func handled(m *Manager, peerID string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.peers[peerID]; p != nil {
		return p.handled.Load()
	}
	return 0
}

// encodeSignal is the wire form of msg, at the current version.
func encodeSignal(t testing.TB, msg SignalMessage) []byte {
	t.Helper()
	msg.V = SignalVersion
	b, err := msg.Encode()
	require.NoError(t, err)
	return b
}

// inject hands m a signal as if from peer `from`, and waits until it has been processed.
func inject(t *testing.T, m *Manager, from string, msg SignalMessage) {
	t.Helper()
	n := handled(m, from)
	require.NoError(t, m.HandleSignal(from, encodeSignal(t, msg)))
	require.Eventually(t, func() bool { return handled(m, from) > n }, 5*time.Second, pollInterval, "signal processed")
}
