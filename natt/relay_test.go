// relay_test.go tests relayed paths through a real TURN server on 127.0.0.1: relay-only over UDP
// and TCP, the relay dying and returning, direct pairs preferred, upgrades to a direct path and
// relayed sessions kept across restarts.

package natt

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/key"
)

const relayTestTimeout = 30 * time.Second

// relayInbox records what OnRelayPacket delivers.
type relayInbox struct{ ch chan []byte }

func newRelayInbox() *relayInbox { return &relayInbox{ch: make(chan []byte, 1024)} }

func (r *relayInbox) deliver(_ string, _ key.Key, b []byte) {
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
		// Short ICE timeouts, so that failures show quickly; still long enough for the checks
		// to find a relayed pair before they time out.
		c.DisconnectedTimeout = time.Second
		c.FailedTimeout = 3 * time.Second
		tweak(c)
	}, id, keyByte)
	return &relayPeer{testPeer: tp, inbox: inbox}
}

// waitPath waits until a reports a connected path to b that satisfies ok, and returns it.
func waitPath(t *testing.T, a, b *relayPeer, what string, ok func(Path) bool) Path {
	t.Helper()
	return waitPathTo(t, a.testPeer, b.testPeer, relayTestTimeout, what, ok)
}

// connectBlocked connects a and b with their direct paths blocked: through the relay.
func connectBlocked(t *testing.T, a, b *relayPeer) (pa, pb Path) {
	t.Helper()
	a.node.blocked.Store(true)
	b.node.blocked.Store(true)
	addEachOther(t, a.testPeer, b.testPeer)
	return waitPath(t, a, b, "relayed path", isRelayRelay), waitPath(t, b, a, "relayed path", isRelayRelay)
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
		_, err := rand.Read(msg)
		require.NoError(t, err)
		msg[0] = 0x04 // not a STUN message (pion refuses to send those as data)
		deadline := time.NewTimer(relayTestTimeout)
		resend := time.NewTicker(time.Second)
		require.NoError(t, from.Send(msg), "send #%d", i)
	wait:
		for {
			select {
			case got := <-to.inbox.ch:
				if bytes.Equal(got, msg) {
					break wait
				}
			case <-resend.C:
				require.NoError(t, from.Send(msg), "resend #%d", i)
			case <-deadline.C:
				require.FailNow(t, "datagram lost", "datagram #%d (%d bytes) did not arrive at %s", i, size, to.id)
			}
		}
		resend.Stop()
		deadline.Stop()
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
	addEachOther(t, a.testPeer, b.testPeer)
	pa = waitPath(t, a, b, "relayed path", isRelayRelay)
	pb = waitPath(t, b, a, "relayed path", isRelayRelay)
	return a, b, pa, pb
}

func testRelayOnly(t *testing.T, transport string) {
	ts := newTURNServer(t)
	a, b, pa, pb := connectRelayed(t, ts, transport)
	assert.NotEqual(t, ts.addr(), pa.Local, "a's local candidate is the server, not an allocation")
	assert.Equal(t, pa.Local, pb.Remote, "relayed pairs match")
	assert.Equal(t, pb.Local, pa.Remote, "relayed pairs match")
	exchange(t, pa, b, 1, 148, 1400)
	exchange(t, pb, a, 1, 148, 1400)
	if transport == "tcp" {
		assert.NotZero(t, ts.tcpConns.Load(), "no TURN connection over TCP")
	} else {
		assert.Zero(t, ts.tcpConns.Load(), "TURN over TCP although UDP was asked for")
	}
}

func TestRelayOnlyUDP(t *testing.T) { testRelayOnly(t, "udp") }
func TestRelayOnlyTCP(t *testing.T) { testRelayOnly(t, "tcp") }

// TestRelayDiesAndReturns: a relayed pair is lost when the TURN server goes away; both sides
// report it and keep retrying, and reconnect through the server once it is back.
func TestRelayDiesAndReturns(t *testing.T) {
	ts := newTURNServer(t)
	a, b, _, _ := connectRelayed(t, ts, "udp")
	ma, mb := a.mark("b"), b.mark("a")

	ts.stop()
	for _, x := range []struct {
		p    *relayPeer
		peer string
		m    mark
	}{{a, "b", ma}, {b, "a", mb}} {
		x.p.waitLost(t, x.peer, x.m, relayTestTimeout, func(st PathStatus) bool {
			return st.Failures > x.m.Failures && st.Sessions > x.m.Sessions
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
	addEachOther(t, a.testPeer, b.testPeer)
	pa := waitPath(t, a, b, "direct path", isDirect)
	waitPath(t, b, a, "direct path", isDirect)
	// On loopback the server-reflexive candidate (the TURN server answers STUN too) has the
	// host candidate's address, and either may win; what matters is that the pair is direct.
	assert.Equal(t, b.addr, pa.Remote)
	assert.Contains(t, []CandidateType{CandidateHost, CandidateSrflx}, pa.LocalType)
	require.Eventually(t, func() bool { return ts.allocs.Load() >= 2 }, relayTestTimeout, pollInterval, "relayed candidates gathered")

	ma, mb := a.mark("b"), b.mark("a")
	ts.stop()
	a.mgr.RestartAll()
	waitStatus(t, a.mgr, "b", relayTestTimeout, "a new session on the direct pair", func(st PathStatus) bool {
		return st.Sessions > ma.Sessions && st.State == StateConnected && st.Path.Remote == b.addr
	})
	assert.False(t, a.paths.lostAfter(ma.paths) || b.paths.lostAfter(mb.paths), "a direct path was lost when the relay died")
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
	pa, pb := connectBlocked(t, a, b)
	exchange(t, pa, b, 300)
	exchange(t, pb, a, 300)
	ma, mb := a.mark("b"), b.mark("a")

	a.node.blocked.Store(false)
	b.node.blocked.Store(false)
	da := waitPath(t, a, b, "direct path after upgrade", isDirect)
	waitPath(t, b, a, "direct path after upgrade", isDirect)
	assert.Equal(t, b.addr, da.Remote)
	assert.False(t, a.paths.lostAfter(ma.paths) || b.paths.lostAfter(mb.paths), "the path was reported lost during the upgrade")
}

// TestRelayedSessionKeptDuringRestart: a restart of a relayed peer keeps the relayed path
// working until the new session has selected its own relayed pair; no loss is reported.
func TestRelayedSessionKeptDuringRestart(t *testing.T) {
	ts := newTURNServer(t)
	a, b, pa, _ := connectRelayed(t, ts, "udp")
	ma, mb := a.mark("b"), b.mark("a")
	a.mgr.RestartAll()
	// The old path still carries data while the new session looks for a pair.
	exchange(t, pa, b, 100)
	pa2 := waitPath(t, a, b, "a new relayed pair", func(p Path) bool { return isRelayRelay(p) && p.session != pa.session })
	st, _ := status(a.mgr, "b")
	assert.Greater(t, st.Sessions, ma.Sessions)
	pb2 := waitPath(t, b, a, "the new relayed pair", func(p Path) bool { return isRelayRelay(p) && p.session == pa2.session })
	exchange(t, pa2, b, 100)
	exchange(t, pb2, a, 100)
	assert.False(t, a.paths.lostAfter(ma.paths) || b.paths.lostAfter(mb.paths), "the relayed path was reported lost during the restart")
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
		m, err := New(cfg)
		if !assert.Error(t, err, tc.name) {
			_ = m.Close()
		}
	}
	m, err := New(base)
	require.NoError(t, err)
	defer m.Close()
	require.NoError(t, m.SetTURN([]TURNServer{{URL: "turn:127.0.0.1:3478?transport=tcp", Username: "u", Password: "p"}}))
	require.Error(t, m.SetTURN([]TURNServer{{URL: "http://x"}}), "SetTURN accepted a bad URL")
}
