package natt

import (
	"testing"
	"time"
)

// Relayed candidates cost a TURN allocation each; sessions gather them only when a relay is
// likely needed (Manager.SetLocalNAT, SetPeerSymmetric, a failed direct session).

// coneTURN configures TURN and reports this host behind an endpoint-independent NAT, before
// any peer is added.
func coneTURN(ts *turnServer, extra ...func(*Config)) func(*Config) {
	return func(c *Config) {
		c.TURN = ts.servers("udp")
		for _, f := range extra {
			f(c)
		}
	}
}

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
	addEachOther(t, a, b)
	waitPath(t, a, b, "direct path", isDirect)
	waitPath(t, b, a, "direct path", isDirect)
	// Gathering is over once both sides signaled end-of-candidates: any allocation would
	// have been made by then.
	eventually(t, relayTestTimeout, "end of candidates from both sides", func() bool {
		return l.count("a", SignalEndOfCandidates) > 0 && l.count("b", SignalEndOfCandidates) > 0
	})
	if n := ts.allocs.Load(); n != 0 {
		t.Fatalf("%d TURN allocations for a pair that connected directly behind cone NATs", n)
	}
}

// A session that fails without relayed candidates is followed by one with them: peers behind
// "cone" NATs that filter each other (direct blocked here) still end up relayed.
func TestRelayAfterDirectFailure(t *testing.T) {
	ts := newTURNServer(t)
	l := newLink()
	a := newConePeer(t, l, "a", 1, ts)
	b := newConePeer(t, l, "b", 2, ts)
	a.node.blocked.Store(true)
	b.node.blocked.Store(true)
	addEachOther(t, a, b)
	pa := waitPath(t, a, b, "relayed path after a failed direct session", isRelayRelay)
	pb := waitPath(t, b, a, "relayed path", isRelayRelay)
	st, _ := status(a.mgr, "b")
	if st.Failures == 0 {
		t.Fatalf("relayed without a failed session first: %+v", st)
	}
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
	addEachOther(t, a, b)
	waitPath(t, a, b, "a path", func(Path) bool { return true })
	eventually(t, relayTestTimeout, "a's allocation for its symmetric peer", func() bool { return ts.allocs.Load() > 0 })
	st, _ := status(a.mgr, "b")
	if st.Failures != 0 {
		t.Fatalf("a session failed before the relay was used: %+v", st)
	}
}

// Looking for a direct pair while relayed makes no new allocation: the kept session's carries
// the traffic, and the path is never reported lost.
func TestUpgradeAttemptsDoNotAllocate(t *testing.T) {
	ts := newTURNServer(t)
	l := newLink()
	fast := func(c *Config) { c.UpgradeInterval = 300 * time.Millisecond }
	a := newRelayPeer(t, l, "a", 1, coneTURN(ts, fast)) // NAT type unknown: relay from the start
	b := newRelayPeer(t, l, "b", 2, coneTURN(ts, fast))
	a.node.blocked.Store(true)
	b.node.blocked.Store(true)
	addEachOther(t, a, b)
	pa := waitPath(t, a, b, "relayed path", isRelayRelay)
	waitPath(t, b, a, "relayed path", isRelayRelay)
	// A relay-to-relay pair on both sides: both allocations are made.
	allocs := ts.allocs.Load()
	_, na := a.paths.last()
	_, nb := b.paths.last()
	s0, _ := status(a.mgr, "b")
	eventually(t, 60*time.Second, "two upgrade attempts by a", func() bool {
		st, _ := status(a.mgr, "b")
		return st.Sessions >= s0.Sessions+2 && st.State == StateConnected && st.Session == pa.session
	})
	if n := ts.allocs.Load(); n != allocs {
		t.Fatalf("upgrade attempts made %d new TURN allocations", n-allocs)
	}
	if a.paths.lostAfter(na) || b.paths.lostAfter(nb) {
		t.Fatal("the relayed path was reported lost during upgrade attempts")
	}
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
	addEachOther(t, a, b)
	pa := waitPath(t, a, b, "direct path", isDirect)
	waitPath(t, b, a, "direct path", isDirect)
	eventually(t, relayTestTimeout, "allocations while the NAT type is unknown", func() bool { return ts.active() > 0 })
	_, na := a.paths.last()
	_, nb := b.paths.last()
	s0, _ := status(a.mgr, "b")
	a.mgr.SetLocalNAT(NATEndpointIndependent)
	b.mgr.SetLocalNAT(NATEndpointIndependent)
	eventually(t, 60*time.Second, "the allocations released and a new session on the pair", func() bool {
		st, _ := status(a.mgr, "b")
		// On loopback the new session may pick the host or the srflx candidate: same address.
		return ts.active() == 0 && st.Sessions > s0.Sessions && st.State == StateConnected &&
			isDirect(st.Path) && st.Path.Remote == pa.Remote
	})
	if a.paths.lostAfter(na) || b.paths.lostAfter(nb) {
		t.Fatal("the direct path was reported lost while its allocation was released")
	}
}

// A Manager that learns it is behind a symmetric NAT replaces a session without relayed
// candidates that has not begun its checks (an unanswered offer) with one that has them.
func TestSymmetricNATStartsRelaySession(t *testing.T) {
	ts := newTURNServer(t)
	l := newLink()
	a := newConePeer(t, l, "a", 1, ts)
	if err := a.mgr.AddPeer("b", [32]byte{2}); err != nil { // b is not there: the offer stays unanswered
		t.Fatal(err)
	}
	eventually(t, relayTestTimeout, "a's offer", func() bool {
		st, _ := status(a.mgr, "b")
		return st.State == StateOffering
	})
	if n := ts.allocs.Load(); n != 0 {
		t.Fatalf("%d allocations behind a cone NAT", n)
	}
	s0, _ := status(a.mgr, "b")
	a.mgr.SetLocalNAT(NATSymmetric)
	eventually(t, relayTestTimeout, "a new session with an allocation", func() bool {
		st, _ := status(a.mgr, "b")
		return st.Sessions > s0.Sessions && ts.allocs.Load() > 0
	})
}
