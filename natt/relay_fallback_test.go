// relay_fallback_test.go tests the fast fallback to the relay: the pure rules (fallbackLook,
// directProgress, the relay nomination wait, the early upgrade look), a peer's fallback in
// virtual time (testing/synctest, memNet), and, with a real TURN server, a relayed peer's early
// look for a direct pair.

package natt

import (
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/ice/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/key"
)

func TestFallbackLook(t *testing.T) {
	for _, tc := range []struct {
		name           string
		elapsed        time.Duration
		progress, kept bool
		now            bool
		again          time.Duration
	}{
		{"first look comes at noProgressAfter", 0, false, false, false, noProgressAfter},
		{"early timer", 100 * ms, false, false, false, noProgressAfter - 100*ms},
		{"nothing heard", noProgressAfter, false, false, true, 0},
		{"nothing heard, late look", time.Second, false, false, true, 0},
		{"heard: wait up to directGrace", noProgressAfter, true, false, false, directGrace - noProgressAfter},
		{"heard, no pair after directGrace", directGrace, true, false, true, 0},
		{"kept: no hurry before directGrace", noProgressAfter, false, true, false, directGrace - noProgressAfter},
		{"kept: nothing heard by directGrace, give up", directGrace, false, true, true, 0},
		{"kept: heard, pion decides", directGrace, true, true, false, 0},
	} {
		now, again := fallbackLook(tc.elapsed, tc.progress, tc.kept)
		assert.Equal(t, tc.now, now, tc.name)
		assert.Equal(t, tc.again, again, tc.name)
	}
}

func TestDirectProgress(t *testing.T) {
	assert.False(t, directProgress(nil), "no pairs")
	assert.False(t, directProgress([]ice.CandidatePairStats{{RequestsSent: 5}, {RequestsSent: 3}}), "checks sent, nothing heard")
	assert.True(t, directProgress([]ice.CandidatePairStats{{RequestsSent: 5}, {ResponsesReceived: 1}}), "a response")
	assert.True(t, directProgress([]ice.CandidatePairStats{{RequestsReceived: 1}}), "a check of the peer's")
}

func TestNominationWait(t *testing.T) {
	upFront := relayNeed{turn: true, localNAT: NATSymmetric}
	assert.Equal(t, relayGrace, upFront.nominationWait(), "a relay likely needed: direct pairs get relayGrace first")
	assert.Zero(t, relayNeed{turn: true, directFailed: true}.nominationWait(), "the direct attempt found nothing")
	assert.Zero(t, relayNeed{turn: true, relayOnly: true}.nominationWait(), "relay only")
}

func TestUpgradeDelay(t *testing.T) {
	assert.Equal(t, earlyUpgradeAfter, upgradeDelay(0, 45*time.Second), "the first look comes early")
	assert.Equal(t, 45*time.Second, upgradeDelay(1, 45*time.Second), "later ones every interval")
	assert.Equal(t, time.Second, upgradeDelay(0, time.Second), "never later than the interval")
}

func TestMaxBindingRequests(t *testing.T) {
	assert.Equal(t, uint16(7), maxBindingRequests(200*ms), "pion's default pacing")
	assert.Equal(t, uint16(14), maxBindingRequests(100*ms), "twice the pace, twice the requests")
	assert.Equal(t, uint16(7), maxBindingRequests(time.Second), "never fewer than pion's default")
}

// refusedTURN is a TURN server over TCP on a 127.0.0.1 port where nothing listens: the dial
// fails at once, so a session that gathers relayed candidates gets none, without blocking on
// the network (which virtual time could not follow).
func refusedTURN(t *testing.T) []TURNServer {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return []TURNServer{{URL: "turn:" + addr + "?transport=tcp", Username: turnUser, Password: turnPass}}
}

// A controlling peer behind a cone NAT whose session hears nothing from the peer for
// noProgressAfter after the peer's first candidate offers a new session at once (it gathers
// relayed candidates), without a failure and long before ICE's timeouts; the controlled side
// offers nothing and waits for it. Both report trouble (the root re-checks its NAT).
func TestFallbackOffersRelaySession(t *testing.T) {
	for _, controlling := range []bool{true, false} {
		name := map[bool]string{true: "controlling", false: "controlled"}[controlling]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				turn := refusedTURN(t)
				l := newLink()
				keyByte := byte(3) // the peer is {2}: the larger key is controlled
				if controlling {
					keyByte = 1
				}
				var mu sync.Mutex
				var trouble []time.Time
				a := newMemPeer(t, l, newMemNet(), "10.0.0.1:5000", func(c *Config) {
					c.TURN = turn
					c.DisconnectedTimeout, c.FailedTimeout = time.Minute, time.Minute
					c.OnTrouble = func(string) {
						mu.Lock()
						trouble = append(trouble, time.Now())
						mu.Unlock()
					}
				}, "a", keyByte)
				a.mgr.SetLocalNAT(NATEndpointIndependent) // no relay up front
				require.NoError(t, a.mgr.AddPeer("b", key.Key{2}))
				synctest.Wait()
				st, _ := status(a.mgr, "b")
				first := st.Session
				// The test plays b: it answers a's offer (or, controlled, a answers b's), with a
				// candidate nothing answers at.
				creds := SignalMessage{Ufrag: "abcd", Pwd: "0123456789abcdefghijkl"}
				if controlling {
					creds.Type, creds.Session = SignalAnswer, first
				} else {
					first = "00000000000000b1"
					creds.Type, creds.Session = SignalOffer, first
				}
				require.NoError(t, a.mgr.HandleSignal("b", encodeSignal(t, creds)))
				require.NoError(t, a.mgr.HandleSignal("b", encodeSignal(t, SignalMessage{
					Type: SignalCandidate, Session: first, Candidate: "candidate:1 1 udp 2130706431 10.0.0.9 5000 typ host",
				})))
				synctest.Wait()
				candAt, offersBefore := time.Now(), l.count("a", SignalOffer)
				time.Sleep(2 * time.Second)
				synctest.Wait()

				ids, at := offersBySession(l, "a", candAt)
				st, _ = status(a.mgr, "b")
				assert.Zero(t, st.Failures, "a session failed")
				mu.Lock()
				if assert.Len(t, trouble, 1, "trouble reports") {
					assert.Equal(t, noProgressAfter, trouble[0].Sub(candAt), "trouble reported at the fallback")
				}
				mu.Unlock()
				if !controlling {
					assert.Equal(t, offersBefore, l.count("a", SignalOffer), "the controlled side offered after the fallback")
					assert.Equal(t, first, st.Session, "the controlled side replaced the session")
					return
				}
				require.Len(t, ids, 2, "a's sessions")
				assert.Equal(t, first, ids[0])
				assert.Equal(t, noProgressAfter, at[ids[1]][0], "the fallback session's offer, after the peer's first candidate")
				assert.Equal(t, ids[1], st.Session)
				assert.Equal(t, 2, st.Sessions)
			})
		})
	}
}

// A relayed peer's first look for a direct pair comes early: with UpgradeInterval an hour, a
// pair relayed by the fast fallback is upgraded once the direct path works, without ever being
// reported lost.
func TestEarlyUpgradeLook(t *testing.T) {
	ts := newTURNServer(t)
	l := newLink()
	hour := func(c *Config) { c.UpgradeInterval = time.Hour }
	a := newConePeer(t, l, "a", 1, ts, hour)
	b := newConePeer(t, l, "b", 2, ts, hour)
	a.node.blocked.Store(true)
	b.node.blocked.Store(true)
	addEachOther(t, a.testPeer, b.testPeer)
	pa := waitPath(t, a, b, "relayed path", func(p Path) bool { return p.Relayed() && p.Send != nil })
	ma, mb := a.mark("b"), b.mark("a")
	exchange(t, pa, b, 100)

	a.node.blocked.Store(false)
	b.node.blocked.Store(false)
	waitPath(t, a, b, "direct path after the early look", isDirect)
	waitPath(t, b, a, "direct path after the early look", isDirect)
	assert.False(t, a.paths.lostAfter(ma.paths) || b.paths.lostAfter(mb.paths), "the path was reported lost during the upgrade")
	require.Eventually(t, func() bool { return ts.active() == 0 }, relayTestTimeout, pollInterval, "the relayed session's allocations released")
}
