// relay_policy_test.go tests when sessions gather relayed candidates (each costs a TURN
// allocation): the pure rules first, then Managers with a real TURN server, where sessions
// gather them only when a relay is likely needed (Manager.SetLocalNAT, SetPeerSymmetric, a
// failed direct session).

package natt

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/key"
)

func TestRelayNeed(t *testing.T) {
	cone := relayNeed{turn: true, localNAT: NATEndpointIndependent}
	with := func(f func(*relayNeed)) relayNeed {
		n := cone
		f(&n)
		return n
	}
	for _, tc := range []struct {
		name string
		need relayNeed
		want bool
	}{
		{"cone NAT, nothing else", cone, false},
		{"no NAT", with(func(n *relayNeed) { n.localNAT = NATNone }), false},
		{"no TURN servers", relayNeed{localNAT: NATSymmetric, relayOnly: true, directFailed: true}, false},
		{"relay only", with(func(n *relayNeed) { n.relayOnly = true }), true},
		{"relay only, upgrade", with(func(n *relayNeed) { n.relayOnly, n.upgrade = true, true }), true},
		{"symmetric NAT here", with(func(n *relayNeed) { n.localNAT = NATSymmetric }), true},
		{"NAT type unknown", with(func(n *relayNeed) { n.localNAT = NATUnknown }), true},
		{"symmetric peer", with(func(n *relayNeed) { n.peerSymmetric = true }), true},
		{"direct session failed", with(func(n *relayNeed) { n.directFailed = true }), true},
		{"upgrade, symmetric NAT here", with(func(n *relayNeed) { n.upgrade, n.localNAT = true, NATSymmetric }), false},
		{"upgrade, direct failed", with(func(n *relayNeed) { n.upgrade, n.directFailed = true, true }), false},
	} {
		want, why := tc.need.wanted()
		assert.Equal(t, tc.want, want, tc.name)
		assert.Equal(t, tc.want, why != "", "%s: reason %q", tc.name, why)
	}
}

func TestReplaceForRelay(t *testing.T) {
	offering := &session{id: "s1", offerer: true}
	checking := &session{id: "s1", started: true}
	relayed := &session{id: "s1", relay: true}
	assert.True(t, replaceForRelay(true, false, nil), "no session yet")
	assert.True(t, replaceForRelay(true, false, offering), "an unanswered offer without relay")
	assert.False(t, replaceForRelay(true, false, checking), "a session already checking goes on")
	assert.False(t, replaceForRelay(true, false, relayed), "a session with relayed candidates")
	assert.False(t, replaceForRelay(true, true, offering), "a kept session carries the relayed path")
	assert.False(t, replaceForRelay(false, false, offering), "no relay wanted")
}

func TestUnneededAllocation(t *testing.T) {
	s := &session{id: "s1", relay: true}
	direct := Path{Remote: netip.MustParseAddrPort("192.0.2.1:5000"), LocalType: CandidateHost, RemoteType: CandidateHost, session: "s1"}
	relayed := direct
	relayed.RemoteType = CandidateRelay
	other := direct
	other.session = "s0"
	assert.True(t, unneededAllocation(s, direct, false, false))
	assert.False(t, unneededAllocation(s, direct, false, true), "a relay is wanted")
	assert.False(t, unneededAllocation(s, direct, true, false), "relay only")
	assert.False(t, unneededAllocation(s, relayed, false, false), "the path is relayed")
	assert.False(t, unneededAllocation(s, other, false, false), "the path is another session's")
	assert.False(t, unneededAllocation(s, Path{}, false, false), "no path")
	assert.False(t, unneededAllocation(&session{id: "s1"}, direct, false, false), "no allocation")
	assert.False(t, unneededAllocation(nil, direct, false, false), "no session")
}

// coneTURN configures TURN, with extra changes.
func coneTURN(ts *turnServer, extra ...func(*Config)) func(*Config) {
	return func(c *Config) {
		c.TURN = ts.servers("udp")
		for _, f := range extra {
			f(c)
		}
	}
}

// newConePeer is a relay peer that reports this host behind an endpoint-independent NAT, before
// any peer is added.
func newConePeer(t *testing.T, l *link, id string, keyByte byte, ts *turnServer, extra ...func(*Config)) *relayPeer {
	t.Helper()
	p := newRelayPeer(t, l, id, keyByte, coneTURN(ts, extra...))
	p.mgr.SetLocalNAT(NATEndpointIndependent)
	return p
}

// Two peers behind cone NATs that reach each other directly make no allocation at all.
func TestNoAllocationForDirectPeers(t *testing.T) {
	ts := newTURNServer(t)
	l := newLink()
	a := newConePeer(t, l, "a", 1, ts)
	b := newConePeer(t, l, "b", 2, ts)
	addEachOther(t, a.testPeer, b.testPeer)
	waitPath(t, a, b, "direct path", isDirect)
	waitPath(t, b, a, "direct path", isDirect)
	// Gathering is over once both sides signaled end-of-candidates: any allocation would
	// have been made by then.
	require.Eventually(t, func() bool {
		return l.count("a", SignalEndOfCandidates) > 0 && l.count("b", SignalEndOfCandidates) > 0
	}, relayTestTimeout, pollInterval, "end of candidates from both sides")
	require.Zero(t, ts.allocs.Load(), "TURN allocations for a pair that connected directly behind cone NATs")
}

// A session without relayed candidates whose direct pairs hear nothing from the peer is
// replaced by one with them, without waiting for ICE to fail: peers behind "cone" NATs that
// filter each other (direct blocked here) end up relayed with no failed session.
func TestRelayFallbackWithoutFailure(t *testing.T) {
	ts := newTURNServer(t)
	l := newLink()
	a := newConePeer(t, l, "a", 1, ts)
	b := newConePeer(t, l, "b", 2, ts)
	pa, pb := connectBlocked(t, a, b)
	for _, x := range [][2]*relayPeer{{a, b}, {b, a}} {
		st, _ := status(x[0].mgr, x[1].id)
		assert.Zero(t, st.Failures, "%s: a session failed before the relay was used: %+v", x[0].id, st)
	}
	st, _ := status(a.mgr, "b")
	assert.GreaterOrEqual(t, st.Sessions, 2, "a (controlling) relayed in its first session, which had no relayed candidates: %+v", st)
	assert.NotZero(t, ts.allocs.Load(), "no TURN allocation")
	exchange(t, pa, b, 200)
	exchange(t, pb, a, 200)
}

// A peer that reported a symmetric NAT gets relayed candidates from the first session on.
func TestRelayForSymmetricPeer(t *testing.T) {
	ts := newTURNServer(t)
	l := newLink()
	a := newConePeer(t, l, "a", 1, ts)
	b := newConePeer(t, l, "b", 2, ts)
	a.mgr.SetPeerSymmetric("b", true) // before AddPeer, as the root does
	addEachOther(t, a.testPeer, b.testPeer)
	waitPath(t, a, b, "a path", func(Path) bool { return true })
	require.Eventually(t, func() bool { return ts.allocs.Load() > 0 }, relayTestTimeout, pollInterval, "a's allocation for its symmetric peer")
	st, _ := status(a.mgr, "b")
	require.Zero(t, st.Failures, "a session failed before the relay was used: %+v", st)
}

// Looking for a direct pair while relayed makes no new allocation: the kept session's carries
// the traffic, and the path is never reported lost.
func TestUpgradeAttemptsDoNotAllocate(t *testing.T) {
	ts := newTURNServer(t)
	l := newLink()
	fast := func(c *Config) { c.UpgradeInterval = 300 * time.Millisecond }
	a := newRelayPeer(t, l, "a", 1, coneTURN(ts, fast)) // NAT type unknown: relay from the start
	b := newRelayPeer(t, l, "b", 2, coneTURN(ts, fast))
	pa, _ := connectBlocked(t, a, b)
	// A relay-to-relay pair on both sides: both allocations are made.
	allocs := ts.allocs.Load()
	ma, mb := a.mark("b"), b.mark("a")
	waitStatus(t, a.mgr, "b", 60*time.Second, "two upgrade attempts by a", func(st PathStatus) bool {
		return st.Sessions >= ma.Sessions+2 && st.State == StateConnected && st.Session == pa.session
	})
	require.Equal(t, allocs, ts.allocs.Load(), "upgrade attempts made new TURN allocations")
	require.False(t, a.paths.lostAfter(ma.paths) || b.paths.lostAfter(mb.paths), "the relayed path was reported lost during upgrade attempts")
	exchange(t, pa, b, 100)
}

// Sessions that started while the NAT type was unknown hold allocations; once the type is
// known to need none, a direct pair's session is replaced by one without, and the path is
// never reported lost.
func TestDirectSessionReleasesAllocation(t *testing.T) {
	ts := newTURNServer(t)
	l := newLink()
	a := newRelayPeer(t, l, "a", 1, coneTURN(ts))
	b := newRelayPeer(t, l, "b", 2, coneTURN(ts))
	addEachOther(t, a.testPeer, b.testPeer)
	pa := waitPath(t, a, b, "direct path", isDirect)
	waitPath(t, b, a, "direct path", isDirect)
	require.Eventually(t, func() bool { return ts.active() > 0 }, relayTestTimeout, pollInterval, "allocations while the NAT type is unknown")
	ma, mb := a.mark("b"), b.mark("a")
	a.mgr.SetLocalNAT(NATEndpointIndependent)
	b.mgr.SetLocalNAT(NATEndpointIndependent)
	waitStatus(t, a.mgr, "b", 60*time.Second, "the allocations released and a new session on the pair", func(st PathStatus) bool {
		// On loopback the new session may pick the host or the srflx candidate: same address.
		return ts.active() == 0 && st.Sessions > ma.Sessions && st.State == StateConnected &&
			isDirect(st.Path) && st.Path.Remote == pa.Remote
	})
	require.False(t, a.paths.lostAfter(ma.paths) || b.paths.lostAfter(mb.paths), "the direct path was reported lost while its allocation was released")
}

// A Manager that learns it is behind a symmetric NAT replaces a session without relayed
// candidates that has not begun its checks (an unanswered offer) with one that has them.
func TestSymmetricNATStartsRelaySession(t *testing.T) {
	ts := newTURNServer(t)
	a := newConePeer(t, newLink(), "a", 1, ts)
	require.NoError(t, a.mgr.AddPeer("b", key.Key{2})) // b is not there: the offer stays unanswered
	s0 := waitStatus(t, a.mgr, "b", relayTestTimeout, "a's offer", func(st PathStatus) bool { return st.State == StateOffering })
	require.Zero(t, ts.allocs.Load(), "allocations behind a cone NAT")
	a.mgr.SetLocalNAT(NATSymmetric)
	waitStatus(t, a.mgr, "b", relayTestTimeout, "a new session with an allocation", func(st PathStatus) bool {
		return st.Sessions > s0.Sessions && ts.allocs.Load() > 0
	})
}
