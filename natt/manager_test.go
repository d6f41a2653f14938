package natt

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// link delivers signals between Managers by peer ID, like the coordinator's signaling would.
// cut stops delivery from a peer (a crashed node says nothing).
type link struct {
	mu    sync.Mutex
	mgrs  map[string]*Manager
	cut   map[string]bool
	types map[string]map[SignalType]int // signals delivered, by sender and type
	sent  atomic.Int64
}

func newLink() *link {
	return &link{mgrs: map[string]*Manager{}, cut: map[string]bool{}, types: map[string]map[SignalType]int{}}
}

// count returns how many signals of type typ from were delivered.
func (l *link) count(from string, typ SignalType) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.types[from][typ]
}

func (l *link) signalFrom(from string) func(ctx context.Context, to string, b []byte) error {
	return func(ctx context.Context, to string, b []byte) error {
		l.mu.Lock()
		m, cut := l.mgrs[to], l.cut[from]
		l.mu.Unlock()
		if cut {
			return errors.New("link cut")
		}
		if m == nil {
			return errors.New("no such peer")
		}
		l.sent.Add(1)
		if msg, err := DecodeSignal(b); err == nil {
			l.mu.Lock()
			if l.types[from] == nil {
				l.types[from] = map[SignalType]int{}
			}
			l.types[from][msg.Type]++
			l.mu.Unlock()
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
}

func (p *pathLog) record(_ string, _ [32]byte, path Path) {
	p.mu.Lock()
	p.calls = append(p.calls, path)
	p.mu.Unlock()
}

func (p *pathLog) last() (Path, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.calls) == 0 {
		return Path{}, 0
	}
	return p.calls[len(p.calls)-1], len(p.calls)
}

func (p *pathLog) lostAfter(n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.calls[min(n, len(p.calls)):] {
		if !c.Valid() {
			return true
		}
	}
	return false
}

type testPeer struct {
	id    string
	key   [32]byte
	node  *testNode
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

func newTestPeer(t *testing.T, l *link, id string, keyByte byte, stunServers ...string) *testPeer {
	t.Helper()
	return newTestPeerOn(t, l, newTestNode(t), nil, id, keyByte, stunServers...)
}

func newTestPeerOn(t *testing.T, l *link, node *testNode, tweak func(*Config), id string, keyByte byte, stunServers ...string) *testPeer {
	t.Helper()
	tp := &testPeer{id: id, key: [32]byte{keyByte}, node: node, paths: &pathLog{}}
	cfg := fastConfig()
	if tweak != nil {
		tweak(&cfg)
	}
	cfg.LocalKey = tp.key
	cfg.Socket = tp.node.sock
	cfg.STUNServers = stunServers
	cfg.Logger = testLogger(t).With("node", id)
	cfg.Signal = l.signalFrom(id)
	cfg.OnPath = tp.paths.record
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tp.mgr = m
	l.mu.Lock()
	l.mgrs[id] = m
	l.mu.Unlock()
	t.Cleanup(func() { _ = m.Close() })
	return tp
}

func status(m *Manager, peerID string) (PathStatus, bool) {
	for _, s := range m.Paths() {
		if s.PeerID == peerID {
			return s, true
		}
	}
	return PathStatus{}, false
}

// waitDirect waits until a reports a path to b's real socket address.
func waitDirect(t *testing.T, a, b *testPeer) Path {
	t.Helper()
	eventually(t, 20*time.Second, a.id+" path to "+b.id, func() bool {
		p, _ := a.paths.last()
		st, _ := status(a.mgr, b.id)
		return p.Valid() && p.Remote == b.node.addr && st.State == StateConnected && st.Path.Remote == b.node.addr
	})
	p, _ := a.paths.last()
	return p
}

func connectPair(t *testing.T, l *link, stunServers ...string) (*testPeer, *testPeer) {
	t.Helper()
	a := newTestPeer(t, l, "a", 1, stunServers...)
	b := newTestPeer(t, l, "b", 2, stunServers...)
	if err := a.mgr.AddPeer("b", b.key); err != nil {
		t.Fatal(err)
	}
	if err := b.mgr.AddPeer("a", a.key); err != nil {
		t.Fatal(err)
	}
	pa, pb := waitDirect(t, a, b), waitDirect(t, b, a)
	for _, p := range []Path{pa, pb} {
		if p.Since.IsZero() || p.Relayed() {
			t.Fatalf("path %+v, want a direct path", p)
		}
		// With a STUN server on loopback the server-reflexive candidate has the host
		// candidate's address, and either may win.
		if len(stunServers) == 0 && (p.LocalType != CandidateHost || (p.RemoteType != CandidateHost && p.RemoteType != CandidatePrflx)) {
			t.Fatalf("path %+v, want a host path", p)
		}
	}
	return a, b
}

func TestManagersConnectOverHostCandidates(t *testing.T) {
	l := newLink()
	a, b := connectPair(t, l)

	sa, _ := status(a.mgr, "b")
	sb, _ := status(b.mgr, "a")
	if !sa.Controlling || sb.Controlling {
		t.Fatalf("roles: a controlling=%v, b controlling=%v; want a (smaller key) controlling", sa.Controlling, sb.Controlling)
	}
	if sa.Session == "" || sa.Session != sb.Session {
		t.Fatalf("sessions differ: %q vs %q", sa.Session, sb.Session)
	}
	if pa, _ := a.paths.last(); pa.Local != a.node.addr {
		t.Fatalf("a's local candidate %v, want its socket %v", pa.Local, a.node.addr)
	}
}

// Both sides added each other before either could hear the other: glare resolved by key order,
// with server-reflexive gathering through the shared socket on the way.
func TestManagersConnectWithSTUN(t *testing.T) {
	srv := newSTUNServer(t)
	l := newLink()
	a, b := connectPair(t, l, srv.addr.String())
	if srv.requestCount() == 0 {
		t.Fatal("no STUN request reached the server through the shared socket")
	}
	_ = a
	_ = b
}

// The second node appears only after the first offered into the void.
func TestManagerLateJoiner(t *testing.T) {
	l := newLink()
	a := newTestPeer(t, l, "a", 1)
	if err := a.mgr.AddPeer("b", [32]byte{2}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a's offer attempt", func() bool {
		st, _ := status(a.mgr, "b")
		return st.State == StateOffering
	})
	b := newTestPeer(t, l, "b", 2)
	if err := b.mgr.AddPeer("a", a.key); err != nil {
		t.Fatal(err)
	}
	waitDirect(t, a, b)
	waitDirect(t, b, a)
}

// RemovePeer on one side: the other side is told (restart), reports the path lost and keeps
// retrying with new sessions.
func TestRemovePeerPathLostAndRetry(t *testing.T) {
	l := newLink()
	a, b := connectPair(t, l)
	before, _ := status(a.mgr, "b")
	_, n := a.paths.last()

	b.mgr.RemovePeer("a")
	eventually(t, 10*time.Second, "a reports the path lost", func() bool { return a.paths.lostAfter(n) })
	eventually(t, 10*time.Second, "a retries", func() bool {
		st, _ := status(a.mgr, "b")
		return st.Sessions > before.Sessions && st.Failures > before.Failures && st.State == StateOffering
	})
	// b answers no more: its Manager rejects signals from a removed peer.
	payload, _ := SignalMessage{V: 1, Type: SignalRestart, Session: "5f0c2a9e41d7b3a8"}.Encode()
	if err := b.mgr.HandleSignal("a", payload); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("signal for removed peer: %v", err)
	}
	// Adding it back reconnects.
	if err := b.mgr.AddPeer("a", a.key); err != nil {
		t.Fatal(err)
	}
	waitDirect(t, a, b)
	waitDirect(t, b, a)
}

// A node that vanishes without a word (crash, cable pulled): consent checks fail, the survivor
// reports the path lost and retries.
func TestPeerVanishesConsentFailure(t *testing.T) {
	l := newLink()
	a, b := connectPair(t, l)
	before, _ := status(a.mgr, "b")
	_, n := a.paths.last()

	l.setCut("b", true)
	b.node.close() // its socket is gone: no more answers to checks
	eventually(t, 15*time.Second, "a reports the path lost", func() bool { return a.paths.lostAfter(n) })
	eventually(t, 15*time.Second, "a retries", func() bool {
		st, _ := status(a.mgr, "b")
		return st.Sessions > before.Sessions
	})
}

func TestManagerCloseTellsPeer(t *testing.T) {
	l := newLink()
	a, b := connectPair(t, l)
	_, n := a.paths.last()
	if err := b.mgr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.mgr.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	eventually(t, 10*time.Second, "a reports the path lost", func() bool { return a.paths.lostAfter(n) })
	eventually(t, 10*time.Second, "a retries", func() bool {
		st, _ := status(a.mgr, "b")
		return st.State == StateOffering && st.Reason != ""
	})
	if err := b.mgr.AddPeer("c", [32]byte{3}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("AddPeer after Close: %v", err)
	}
}

func TestRestartAllReconnects(t *testing.T) {
	l := newLink()
	a, b := connectPair(t, l)
	before, _ := status(a.mgr, "b")
	a.mgr.RestartAll()
	eventually(t, 20*time.Second, "a new session connected", func() bool {
		sa, _ := status(a.mgr, "b")
		sb, _ := status(b.mgr, "a")
		return sa.Session != before.Session && sa.Session == sb.Session &&
			sa.State == StateConnected && sb.State == StateConnected && sa.Path.Remote == b.node.addr
	})
}

func TestHandleSignalRejectsGarbage(t *testing.T) {
	l := newLink()
	a := newTestPeer(t, l, "a", 1)
	if err := a.mgr.AddPeer("b", [32]byte{2}); err != nil {
		t.Fatal(err)
	}
	for _, in := range [][]byte{nil, []byte("{"), []byte(`{"v":1,"type":"nope","session":"5f0c2a9e41d7b3a8"}`), make([]byte, MaxSignalSize+1)} {
		if err := a.mgr.HandleSignal("b", in); !errors.Is(err, ErrBadSignal) {
			t.Fatalf("HandleSignal(%q) = %v, want ErrBadSignal", in, err)
		}
	}
	good, _ := SignalMessage{V: 1, Type: SignalRestart, Session: "5f0c2a9e41d7b3a8"}.Encode()
	if err := a.mgr.HandleSignal("zz", good); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("unknown peer: %v", err)
	}
	// Signals for sessions that do not exist are ignored without harm.
	if err := a.mgr.HandleSignal("b", good); err != nil {
		t.Fatal(err)
	}
}

func TestAddPeerValidation(t *testing.T) {
	l := newLink()
	a := newTestPeer(t, l, "a", 1)
	if err := a.mgr.AddPeer("b", [32]byte{2}); err != nil {
		t.Fatal(err)
	}
	if err := a.mgr.AddPeer("b", [32]byte{2}); err != nil {
		t.Fatalf("re-adding the same peer: %v", err)
	}
	if err := a.mgr.AddPeer("b", [32]byte{3}); !errors.Is(err, ErrPeerExists) {
		t.Fatalf("another key: %v", err)
	}
	if err := a.mgr.AddPeer("self", a.key); err == nil {
		t.Fatal("own key accepted")
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without socket accepted")
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after the other cleanups
	srv := newSTUNServer(t)
	l := newLink()
	a, b := connectPair(t, l, srv.addr.String())
	if err := a.mgr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.mgr.Close(); err != nil {
		t.Fatal(err)
	}
	a.node.close()
	b.node.close()
}

// Sockets bound to 0.0.0.0, as mesh binds them: host candidates come from the interfaces, here
// restricted to loopback by the IP filter.
func TestManagersConnectUnspecifiedBind(t *testing.T) {
	l := newLink()
	onlyLoopback := func(c *Config) { c.IPFilter = func(a netip.Addr) bool { return a.IsLoopback() } }
	a := newTestPeerOn(t, l, newTestNodeAt(t, net.IPv4zero), onlyLoopback, "a", 1)
	b := newTestPeerOn(t, l, newTestNodeAt(t, net.IPv4zero), onlyLoopback, "b", 2)
	if err := a.mgr.AddPeer("b", b.key); err != nil {
		t.Fatal(err)
	}
	if err := b.mgr.AddPeer("a", a.key); err != nil {
		t.Fatal(err)
	}
	waitDirect(t, a, b)
	waitDirect(t, b, a)
}

func TestHostFilter(t *testing.T) {
	port := uint16(5000)
	unspec := netip.AddrPortFrom(netip.IPv4Unspecified(), port)
	has := func(addrs []net.Addr, want netip.Addr) bool {
		for _, a := range addrs {
			if a.(*net.UDPAddr).AddrPort() == netip.AddrPortFrom(want, port) {
				return true
			}
		}
		return false
	}
	lo := netip.MustParseAddr("127.0.0.1")
	if got := (hostFilter{}).listenAddrs(unspec); has(got, lo) {
		t.Fatalf("loopback offered without IncludeLoopback: %v", got)
	}
	if got := (hostFilter{includeLoopback: true}).listenAddrs(unspec); !has(got, lo) {
		t.Fatalf("loopback missing with IncludeLoopback: %v", got)
	}
	none := hostFilter{includeLoopback: true, ip: func(netip.Addr) bool { return false }}
	if got := none.listenAddrs(unspec); len(got) != 0 {
		t.Fatalf("IP filter ignored: %v", got)
	}
	noIface := hostFilter{includeLoopback: true, iface: func(string) bool { return false }}
	if got := noIface.listenAddrs(unspec); len(got) != 0 {
		t.Fatalf("interface filter ignored: %v", got)
	}
	bound := netip.MustParseAddrPort("127.0.0.1:5000")
	if got := (hostFilter{includeLoopback: true}).listenAddrs(bound); len(got) != 1 || !has(got, lo) {
		t.Fatalf("bound socket: %v", got)
	}
	f := hostFilter{includeLoopback: true}
	for _, a := range []string{"169.254.1.1", "fe80::1", "::1", "224.0.0.1", "0.0.0.0"} {
		if f.keepAddr(netip.MustParseAddr(a)) {
			t.Errorf("%s kept", a)
		}
	}
}

func handled(m *Manager, peerID string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.peers[peerID]; p != nil {
		return p.handled.Load()
	}
	return 0
}

// inject hands m a signal as if from peer `from`, and waits until it has been processed.
func inject(t *testing.T, m *Manager, from string, msg SignalMessage) {
	t.Helper()
	msg.V = SignalVersion
	b, err := msg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	n := handled(m, from)
	if err := m.HandleSignal(from, b); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "signal processed", func() bool { return handled(m, from) > n })
}

// Messages of ended sessions, answers nobody asked for and candidates of unknown sessions
// change nothing.
func TestStaleSignalsIgnored(t *testing.T) {
	l := newLink()
	a, b := connectPair(t, l)
	old, _ := status(b.mgr, "a")
	a.mgr.RestartAll()
	eventually(t, 20*time.Second, "a new session", func() bool {
		sa, _ := status(a.mgr, "b")
		sb, _ := status(b.mgr, "a")
		return sa.Session != old.Session && sa.Session == sb.Session && sa.State == StateConnected && sb.State == StateConnected
	})
	cur, _ := status(b.mgr, "a")
	_, n := b.paths.last()

	inject(t, b.mgr, "a", SignalMessage{Type: SignalRestart, Session: old.Session})
	inject(t, b.mgr, "a", SignalMessage{Type: SignalAnswer, Session: old.Session, Ufrag: "abcd", Pwd: "0123456789abcdefghijkl"})
	inject(t, b.mgr, "a", SignalMessage{Type: SignalAnswer, Session: cur.Session, Ufrag: "abcd", Pwd: "0123456789abcdefghijkl"})
	inject(t, b.mgr, "a", SignalMessage{Type: SignalRestart, Session: "0000000000000000"})
	inject(t, b.mgr, "a", SignalMessage{Type: SignalCandidate, Session: "1111111111111111", Candidate: testCand})
	inject(t, b.mgr, "a", SignalMessage{Type: SignalOffer, Session: old.Session, Ufrag: "abcd", Pwd: "0123456789abcdefghijkl"})

	after, _ := status(b.mgr, "a")
	if after.Session != cur.Session || after.State != StateConnected || after.Failures != cur.Failures || b.paths.lostAfter(n) {
		t.Fatalf("stale signals changed the state: before %+v, after %+v", cur, after)
	}
}

func TestBackoffBounds(t *testing.T) {
	cfg := fastConfig()
	cfg.setDefaults()
	p := &peer{m: &Manager{cfg: cfg}}
	for attempt, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second} {
		d := p.backoff(attempt)
		if d < want-want/10 || d > want+want/10 {
			t.Errorf("backoff(%d) = %v, want %v ±10%%", attempt, d, want)
		}
	}
	if d := p.backoff(1000); d > cfg.BackoffMax+cfg.BackoffMax/10 {
		t.Errorf("backoff(1000) = %v exceeds the cap", d)
	}
}

// Discover and NAT detection share the socket with a running Manager: their responses are
// routed by transaction ID, not read by the ICE mux.
func TestDetectNATWhileManagerRuns(t *testing.T) {
	s1, s2 := newSTUNServer(t), newSTUNServer(t)
	l := newLink()
	a, _ := connectPair(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := DetectNAT(ctx, a.node.sock, []netip.AddrPort{s1.addr, s2.addr})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != NATNone || info.Reflexive != a.node.addr {
		t.Fatalf("info = %+v", info)
	}
	if err := a.mgr.Restart("b"); err != nil {
		t.Fatal(err)
	}
	if err := a.mgr.Restart("nobody"); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("Restart(unknown) = %v", err)
	}
}

// A peer starts in StateNew, not StateWaiting: "waiting" means a session failed, and a caller
// waiting for NAT traversal to settle (nxcat status -wait) took the initial state for a verdict
// before the first session had even started. On the way to connected, no snapshot may show
// "waiting" without a reason.
func TestPeerStartsNew(t *testing.T) {
	l := newLink()
	a := newTestPeer(t, l, "a", 1)

	// The initial state, before the actor's goroutine runs (newPeer is what AddPeer calls).
	p := newPeer(a.mgr, "x", [32]byte{9})
	st := p.statusSnapshot()
	p.cancel()
	if st.State != StateNew || st.Session != "" || st.Reason != "" || st.Sessions != 0 {
		t.Fatalf("status of a just-made peer: %+v, want state %q, no session, no reason", st, StateNew)
	}

	b := newTestPeer(t, l, "b", 2)
	if err := b.mgr.AddPeer("a", a.key); err != nil {
		t.Fatal(err)
	}
	if err := a.mgr.AddPeer("b", b.key); err != nil {
		t.Fatal(err)
	}
	seen := map[PeerState]bool{}
	eventually(t, 20*time.Second, "a connected to b", func() bool {
		st, ok := status(a.mgr, "b")
		if !ok {
			t.Fatal("peer b not in a's Paths right after AddPeer")
		}
		seen[st.State] = true
		if st.State == StateWaiting && st.Reason == "" {
			t.Fatalf("a's peer b is waiting without a reason before any session failed: %+v", st)
		}
		if st.State == StateConnected && !st.Path.Valid() {
			t.Fatalf("a's peer b is connected without a pair: %+v", st)
		}
		return st.State == StateConnected
	})
	t.Logf("states seen on the way: %v", seen)
}
