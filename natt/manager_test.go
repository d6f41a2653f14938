// manager_test.go tests Managers that connect over real UDP sockets on 127.0.0.1: roles,
// glare, late joiners, removal, vanishing peers, restarts, and the Manager's API errors.

package natt

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nexodus-sdk/nexodus/key"
)

func TestManagersConnectOverHostCandidates(t *testing.T) {
	l := newLink()
	a, b := connectPair(t, l)

	sa, _ := status(a.mgr, "b")
	sb, _ := status(b.mgr, "a")
	assert.True(t, sa.Controlling, "a (smaller key) controls")
	assert.False(t, sb.Controlling, "b does not control")
	assert.NotEmpty(t, sa.Session)
	assert.Equal(t, sa.Session, sb.Session, "both sides are in one session")
	pa, _ := a.paths.last()
	assert.Equal(t, a.node.addr, pa.Local, "a's local candidate is its socket")
}

// Both sides added each other before either could hear the other: glare resolved by key order,
// with server-reflexive gathering through the shared socket on the way.
func TestManagersConnectWithSTUN(t *testing.T) {
	srv := newSTUNServer(t)
	connectPair(t, newLink(), srv.addr.String())
	require.NotZero(t, srv.requestCount(), "no STUN request reached the server through the shared socket")
}

// The second node appears only after the first offered into the void.
func TestManagerLateJoiner(t *testing.T) {
	l := newLink()
	a := newTestPeer(t, l, "a", 1)
	require.NoError(t, a.mgr.AddPeer("b", key.Key{2}))
	waitStatus(t, a.mgr, "b", 5*time.Second, "a's offer attempt", func(st PathStatus) bool { return st.State == StateOffering })
	b := newTestPeer(t, l, "b", 2)
	require.NoError(t, b.mgr.AddPeer("a", a.key))
	waitDirectBoth(t, a, b)
}

// RemovePeer on one side: the other side is told (restart), reports the path lost and keeps
// retrying with new sessions.
func TestRemovePeerPathLostAndRetry(t *testing.T) {
	a, b := connectPair(t, newLink())
	before := a.mark("b")

	b.mgr.RemovePeer("a")
	a.waitLost(t, "b", before, 10*time.Second, func(st PathStatus) bool {
		return st.Sessions > before.Sessions && st.Failures > before.Failures && st.State == StateOffering
	})
	// b answers no more: its Manager rejects signals from a removed peer.
	err := b.mgr.HandleSignal("a", encodeSignal(t, SignalMessage{Type: SignalRestart, Session: "5f0c2a9e41d7b3a8"}))
	require.ErrorIs(t, err, ErrUnknownPeer)
	// Adding it back reconnects.
	require.NoError(t, b.mgr.AddPeer("a", a.key))
	waitDirectBoth(t, a, b)
}

// A node that vanishes without a word (crash, cable pulled): consent checks fail, the survivor
// reports the path lost and retries.
func TestPeerVanishesConsentFailure(t *testing.T) {
	l := newLink()
	a, b := connectPair(t, l)
	before := a.mark("b")

	l.setCut("b", true)
	b.node.close() // its socket is gone: no more answers to checks
	a.waitLost(t, "b", before, 15*time.Second, func(st PathStatus) bool { return st.Sessions > before.Sessions })
}

func TestManagerCloseTellsPeer(t *testing.T) {
	l := newLink()
	a, b := connectPair(t, l)
	before := a.mark("b")
	require.NoError(t, b.mgr.Close())
	a.waitLost(t, "b", before, 10*time.Second, func(st PathStatus) bool {
		return st.State == StateOffering && st.Reason != ""
	})
	require.ErrorIs(t, b.mgr.AddPeer("c", key.Key{3}), net.ErrClosed)
}

// waitNewSession waits until a and b share a connected session other than old, whose pair a
// reaches b's socket by.
func waitNewSession(t *testing.T, a, b *testPeer, old string) {
	t.Helper()
	require.Eventually(t, func() bool {
		sa, _ := status(a.mgr, b.id)
		sb, _ := status(b.mgr, a.id)
		return sa.Session != old && sa.Session == sb.Session &&
			sa.State == StateConnected && sb.State == StateConnected && sa.Path.Remote == b.addr
	}, 20*time.Second, pollInterval, "a new session connected")
}

func TestRestartAllReconnects(t *testing.T) {
	a, b := connectPair(t, newLink())
	before, _ := status(a.mgr, "b")
	a.mgr.RestartAll()
	waitNewSession(t, a, b, before.Session)
}

func TestHandleSignalRejectsGarbage(t *testing.T) {
	a := newTestPeer(t, newLink(), "a", 1)
	require.NoError(t, a.mgr.AddPeer("b", key.Key{2}))
	for _, in := range [][]byte{nil, []byte("{"), []byte(`{"v":1,"type":"nope","session":"5f0c2a9e41d7b3a8"}`), make([]byte, MaxSignalSize+1)} {
		assert.ErrorIs(t, a.mgr.HandleSignal("b", in), ErrBadSignal, "HandleSignal(%q)", in)
	}
	good := encodeSignal(t, SignalMessage{Type: SignalRestart, Session: "5f0c2a9e41d7b3a8"})
	require.ErrorIs(t, a.mgr.HandleSignal("zz", good), ErrUnknownPeer)
	// Signals for sessions that do not exist are ignored without harm.
	require.NoError(t, a.mgr.HandleSignal("b", good))
}

func TestAddPeerValidation(t *testing.T) {
	a := newTestPeer(t, newLink(), "a", 1)
	require.NoError(t, a.mgr.AddPeer("b", key.Key{2}))
	require.NoError(t, a.mgr.AddPeer("b", key.Key{2}), "re-adding the same peer")
	require.ErrorIs(t, a.mgr.AddPeer("b", key.Key{3}), ErrPeerExists)
	require.Error(t, a.mgr.AddPeer("self", a.key), "own key accepted")
	require.Error(t, a.mgr.AddPeer("", key.Key{4}), "empty peer ID accepted")
	_, err := New(Config{})
	require.Error(t, err, "New without socket accepted")
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after the other cleanups
	srv := newSTUNServer(t)
	a, b := connectPair(t, newLink(), srv.addr.String())
	require.NoError(t, a.mgr.Close())
	require.NoError(t, b.mgr.Close())
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
	addEachOther(t, a, b)
	waitDirectBoth(t, a, b)
}

// Messages of ended sessions, answers nobody asked for and candidates of unknown sessions
// change nothing.
func TestStaleSignalsIgnored(t *testing.T) {
	a, b := connectPair(t, newLink())
	old, _ := status(b.mgr, "a")
	a.mgr.RestartAll()
	waitNewSession(t, a, b, old.Session)
	cur := b.mark("a")

	const ufrag, pwd = "abcd", "0123456789abcdefghijkl"
	for _, msg := range []SignalMessage{
		{Type: SignalRestart, Session: old.Session},
		{Type: SignalAnswer, Session: old.Session, Ufrag: ufrag, Pwd: pwd},
		{Type: SignalAnswer, Session: cur.Session, Ufrag: ufrag, Pwd: pwd},
		{Type: SignalRestart, Session: "0000000000000000"},
		{Type: SignalCandidate, Session: "1111111111111111", Candidate: testCand},
		{Type: SignalOffer, Session: old.Session, Ufrag: ufrag, Pwd: pwd},
	} {
		inject(t, b.mgr, "a", msg)
	}

	after, _ := status(b.mgr, "a")
	assert.Equal(t, cur.Session, after.Session)
	assert.Equal(t, StateConnected, after.State)
	assert.Equal(t, cur.Failures, after.Failures)
	assert.False(t, b.paths.lostAfter(cur.paths), "the path was reported lost")
}

// Discover and NAT detection share the socket with a running Manager: their responses are
// routed by transaction ID, not read by the ICE mux.
func TestDetectNATWhileManagerRuns(t *testing.T) {
	s1, s2 := newSTUNServer(t), newSTUNServer(t)
	a, _ := connectPair(t, newLink())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := DetectNAT(ctx, a.node.sock, []netip.AddrPort{s1.addr, s2.addr})
	require.NoError(t, err)
	assert.Equal(t, NATNone, info.Type)
	assert.Equal(t, a.node.addr, info.Reflexive)
	require.NoError(t, a.mgr.Restart("b"))
	require.ErrorIs(t, a.mgr.Restart("nobody"), ErrUnknownPeer)
}

// A peer starts in StateNew, not StateWaiting: "waiting" means a session failed, and a caller
// waiting for NAT traversal to settle (nxcat status -wait) took the initial state for a verdict
// before the first session had even started. On the way to connected, no snapshot may show
// "waiting" without a reason.
func TestPeerStartsNew(t *testing.T) {
	l := newLink()
	a := newTestPeer(t, l, "a", 1)

	// The initial state, before the actor's goroutine runs (newPeer is what AddPeer calls).
	p := newPeer(a.mgr, "x", key.Key{9})
	st := p.statusSnapshot()
	p.cancel()
	assert.Equal(t, StateNew, st.State)
	assert.Empty(t, st.Session)
	assert.Empty(t, st.Reason)
	assert.Zero(t, st.Sessions)

	b := newTestPeer(t, l, "b", 2)
	addEachOther(t, b, a)
	seen := map[PeerState]bool{}
	var bad []PathStatus // snapshots that must not be
	require.Eventually(t, func() bool {
		st, ok := status(a.mgr, "b")
		if !ok || st.State == StateWaiting && st.Reason == "" || st.State == StateConnected && !st.Path.Valid() {
			bad = append(bad, st)
		}
		seen[st.State] = true
		return st.State == StateConnected || len(bad) > 0
	}, 20*time.Second, pollInterval, "a connected to b")
	require.Empty(t, bad, "peer b missing, waiting without a reason, or connected without a pair")
	t.Logf("states seen on the way: %v", seen)
}
