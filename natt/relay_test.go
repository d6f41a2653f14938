package natt

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"
)

const relayTestTimeout = 30 * time.Second

// relayInbox records what OnRelayPacket delivers.
type relayInbox struct{ ch chan []byte }

func newRelayInbox() *relayInbox { return &relayInbox{ch: make(chan []byte, 1024)} }

func (r *relayInbox) deliver(_ string, _ [32]byte, b []byte) {
	select {
	case r.ch <- bytes.Clone(b):
	default:
	}
}

type relayPeer struct {
	*testPeer
	inbox *relayInbox
}

func newRelayPeer(t *testing.T, l *link, id string, keyByte byte, tweak func(*Config)) *relayPeer {
	t.Helper()
	inbox := newRelayInbox()
	tp := newTestPeerOn(t, l, newTestNode(t), func(c *Config) {
		c.OnRelayPacket = inbox.deliver
		// pion nominates a relayed pair only after 2 s (waiting for a direct one); checks
		// must not time out before.
		c.DisconnectedTimeout = time.Second
		c.FailedTimeout = 3 * time.Second
		tweak(c)
	}, id, keyByte)
	return &relayPeer{testPeer: tp, inbox: inbox}
}

func addEachOther(t *testing.T, a, b *relayPeer) {
	t.Helper()
	if err := a.mgr.AddPeer(b.id, b.key); err != nil {
		t.Fatal(err)
	}
	if err := b.mgr.AddPeer(a.id, a.key); err != nil {
		t.Fatal(err)
	}
}

// waitPath waits until a reports a connected path to b that satisfies ok, and returns it.
func waitPath(t *testing.T, a, b *relayPeer, what string, ok func(Path) bool) Path {
	t.Helper()
	eventually(t, relayTestTimeout, a.id+": "+what, func() bool {
		p, _ := a.paths.last()
		st, _ := status(a.mgr, b.id)
		return p.Valid() && ok(p) && st.State == StateConnected && st.Path.samePair(p)
	})
	p, _ := a.paths.last()
	return p
}

func isRelayRelay(p Path) bool {
	return p.LocalType == CandidateRelay && p.RemoteType == CandidateRelay && p.Relayed() && p.Send != nil
}

func isDirect(p Path) bool { return !p.Relayed() && p.Send == nil }

// exchange sends datagrams through from's path and checks that to's OnRelayPacket gets them
// byte-exact. A datagram lost on the way (UDP) is sent again.
func exchange(t *testing.T, from Path, to *relayPeer, sizes ...int) {
	t.Helper()
	for i, size := range sizes {
		msg := make([]byte, size)
		if _, err := rand.Read(msg); err != nil {
			t.Fatal(err)
		}
		msg[0] = 0x04 // not a STUN message (pion refuses to send those as data)
		deadline := time.Now().Add(relayTestTimeout)
		resend := time.NewTicker(time.Second)
		if err := from.Send(msg); err != nil {
			t.Fatalf("send #%d: %v", i, err)
		}
	wait:
		for {
			select {
			case got := <-to.inbox.ch:
				if bytes.Equal(got, msg) {
					break wait
				}
			case <-resend.C:
				if time.Now().After(deadline) {
					t.Fatalf("datagram #%d (%d bytes) did not arrive at %s", i, size, to.id)
				}
				if err := from.Send(msg); err != nil {
					t.Fatalf("resend #%d: %v", i, err)
				}
			}
		}
		resend.Stop()
	}
}

func relayOnly(ts *turnServer, transport string) func(*Config) {
	return func(c *Config) {
		c.TURN = ts.servers(transport)
		c.RelayOnly = true
	}
}

func connectRelayed(t *testing.T, ts *turnServer, transport string) (a, b *relayPeer, pa, pb Path) {
	t.Helper()
	l := newLink()
	a = newRelayPeer(t, l, "a", 1, relayOnly(ts, transport))
	b = newRelayPeer(t, l, "b", 2, relayOnly(ts, transport))
	addEachOther(t, a, b)
	pa = waitPath(t, a, b, "relayed path", isRelayRelay)
	pb = waitPath(t, b, a, "relayed path", isRelayRelay)
	return a, b, pa, pb
}

func testRelayOnly(t *testing.T, transport string) {
	ts := newTURNServer(t)
	a, b, pa, pb := connectRelayed(t, ts, transport)
	if pa.Local == ts.addr() || pa.Local != pb.Remote || pb.Local != pa.Remote {
		t.Fatalf("relayed pairs do not match: a %v, b %v", pa, pb)
	}
	exchange(t, pa, b, 1, 148, 1400)
	exchange(t, pb, a, 1, 148, 1400)
	if transport == "tcp" && ts.tcpConns.Load() == 0 {
		t.Fatal("no TURN connection over TCP")
	}
	if transport == "udp" && ts.tcpConns.Load() != 0 {
		t.Fatal("TURN over TCP although UDP was asked for")
	}
}

func TestRelayOnlyUDP(t *testing.T) { testRelayOnly(t, "udp") }
func TestRelayOnlyTCP(t *testing.T) { testRelayOnly(t, "tcp") }

// TestRelayDiesAndReturns: a relayed pair is lost when the TURN server goes away; both sides
// report it and keep retrying, and reconnect through the server once it is back.
func TestRelayDiesAndReturns(t *testing.T) {
	ts := newTURNServer(t)
	a, b, _, _ := connectRelayed(t, ts, "udp")
	_, na := a.paths.last()
	_, nb := b.paths.last()
	sa0, _ := status(a.mgr, "b")
	sb0, _ := status(b.mgr, "a")

	ts.stop()
	for _, x := range []struct {
		p    *relayPeer
		peer string
		n    int
		st0  PathStatus
	}{{a, "b", na, sa0}, {b, "a", nb, sb0}} {
		eventually(t, relayTestTimeout, x.p.id+" reports the path lost and retries", func() bool {
			st, _ := status(x.p.mgr, x.peer)
			return x.p.paths.lostAfter(x.n) && st.Failures > x.st0.Failures && st.Sessions > x.st0.Sessions
		})
	}

	ts.restart()
	pa := waitPath(t, a, b, "relayed path after the relay returned", isRelayRelay)
	pb := waitPath(t, b, a, "relayed path after the relay returned", isRelayRelay)
	exchange(t, pa, b, 200)
	exchange(t, pb, a, 200)
}

// TestDirectPreferredOverRelay: with TURN configured (and relayed candidates gathered), two
// peers that can reach each other directly select a direct pair; the relay dying later does
// not affect them, even when they restart their sessions.
func TestDirectPreferredOverRelay(t *testing.T) {
	ts := newTURNServer(t)
	l := newLink()
	withTURN := func(c *Config) { c.TURN = ts.servers("udp") }
	a := newRelayPeer(t, l, "a", 1, withTURN)
	b := newRelayPeer(t, l, "b", 2, withTURN)
	addEachOther(t, a, b)
	pa := waitPath(t, a, b, "direct path", isDirect)
	waitPath(t, b, a, "direct path", isDirect)
	// On loopback the server-reflexive candidate (the TURN server answers STUN too) has the
	// host candidate's address, and either may win; what matters is that the pair is direct.
	if pa.Remote != b.node.addr || (pa.LocalType != CandidateHost && pa.LocalType != CandidateSrflx) {
		t.Fatalf("path %v, want a direct pair to %v", pa, b.node.addr)
	}
	eventually(t, relayTestTimeout, "relayed candidates gathered", func() bool { return ts.allocs.Load() >= 2 })

	_, na := a.paths.last()
	_, nb := b.paths.last()
	sa0, _ := status(a.mgr, "b")
	ts.stop()
	a.mgr.RestartAll()
	eventually(t, relayTestTimeout, "a new session on the direct pair", func() bool {
		st, _ := status(a.mgr, "b")
		return st.Sessions > sa0.Sessions && st.State == StateConnected && st.Path.Remote == b.node.addr
	})
	if a.paths.lostAfter(na) || b.paths.lostAfter(nb) {
		t.Fatal("a direct path was lost when the relay died")
	}
}

// TestRelayedUpgradesToDirect: peers whose direct path is blocked connect through the relay;
// once the direct path works, the periodic upgrade finds it and switches without ever
// reporting the path lost.
func TestRelayedUpgradesToDirect(t *testing.T) {
	ts := newTURNServer(t)
	l := newLink()
	cfg := func(c *Config) {
		c.TURN = ts.servers("udp")
		c.UpgradeInterval = 500 * time.Millisecond
	}
	a := newRelayPeer(t, l, "a", 1, cfg)
	b := newRelayPeer(t, l, "b", 2, cfg)
	a.node.blocked.Store(true)
	b.node.blocked.Store(true)
	addEachOther(t, a, b)
	pa := waitPath(t, a, b, "relayed path", isRelayRelay)
	pb := waitPath(t, b, a, "relayed path", isRelayRelay)
	exchange(t, pa, b, 300)
	exchange(t, pb, a, 300)
	_, na := a.paths.last()
	_, nb := b.paths.last()

	a.node.blocked.Store(false)
	b.node.blocked.Store(false)
	da := waitPath(t, a, b, "direct path after upgrade", isDirect)
	waitPath(t, b, a, "direct path after upgrade", isDirect)
	if da.Remote != b.node.addr {
		t.Fatalf("upgraded path %v, want %v", da, b.node.addr)
	}
	if a.paths.lostAfter(na) || b.paths.lostAfter(nb) {
		t.Fatal("the path was reported lost during the upgrade")
	}
}

// TestRelayedSessionKeptDuringRestart: a restart of a relayed peer keeps the relayed path
// working until the new session has selected its own relayed pair; no loss is reported.
func TestRelayedSessionKeptDuringRestart(t *testing.T) {
	ts := newTURNServer(t)
	a, b, pa, _ := connectRelayed(t, ts, "udp")
	_, na := a.paths.last()
	_, nb := b.paths.last()
	sa0, _ := status(a.mgr, "b")
	a.mgr.RestartAll()
	// The old path still carries data while the new session looks for a pair.
	exchange(t, pa, b, 100)
	eventually(t, relayTestTimeout, "a new relayed pair", func() bool {
		p, _ := a.paths.last()
		st, _ := status(a.mgr, "b")
		return st.Sessions > sa0.Sessions && isRelayRelay(p) && p.session != pa.session && st.State == StateConnected
	})
	pa2, _ := a.paths.last()
	pb2 := waitPath(t, b, a, "the new relayed pair", func(p Path) bool { return isRelayRelay(p) && p.session == pa2.session })
	exchange(t, pa2, b, 100)
	exchange(t, pb2, a, 100)
	if a.paths.lostAfter(na) || b.paths.lostAfter(nb) {
		t.Fatal("the relayed path was reported lost during the restart")
	}
}

func TestTURNConfigErrors(t *testing.T) {
	node := newTestNode(t)
	base := Config{Socket: node.sock, Signal: newLink().signalFrom("x")}
	for _, tc := range []struct {
		name string
		cfg  func(*Config)
	}{
		{"relay only without TURN", func(c *Config) { c.RelayOnly = true }},
		{"stun URL", func(c *Config) { c.TURN = []TURNServer{{URL: "stun:127.0.0.1:3478", Username: "u", Password: "p"}} }},
		{"no credentials", func(c *Config) { c.TURN = []TURNServer{{URL: "turn:127.0.0.1:3478"}} }},
		{"bad URL", func(c *Config) { c.TURN = []TURNServer{{URL: "turn:", Username: "u", Password: "p"}} }},
	} {
		cfg := base
		tc.cfg(&cfg)
		if m, err := New(cfg); err == nil {
			m.Close()
			t.Errorf("%s: accepted", tc.name)
		}
	}
	m, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.SetTURN([]TURNServer{{URL: "turn:127.0.0.1:3478?transport=tcp", Username: "u", Password: "p"}}); err != nil {
		t.Fatal(err)
	}
	if err := m.SetTURN([]TURNServer{{URL: "http://x"}}); err == nil {
		t.Fatal("SetTURN accepted a bad URL")
	}
}
