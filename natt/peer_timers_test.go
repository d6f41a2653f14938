// peer_timers_test.go tests a peer's timers in virtual time (testing/synctest), with Managers on
// a memNet: offer retransmission and renewal, the restart backoff, a lost path's restart, the
// trouble report of slow checks, and Close against a stuck coordinator. The test may play the
// remote peer itself, by handing the Manager signals.

package natt

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/key"
)

const ms = time.Millisecond

// offersBySession returns when each session's offers were sent, relative to start, in order.
func offersBySession(l *link, from string, start time.Time) (ids []string, at map[string][]time.Duration) {
	at = map[string][]time.Duration{}
	for _, s := range l.signals(from, SignalOffer) {
		if _, ok := at[s.msg.Session]; !ok {
			ids = append(ids, s.msg.Session)
		}
		at[s.msg.Session] = append(at[s.msg.Session], s.at.Sub(start))
	}
	return ids, at
}

// An offer nobody answers is sent again after OfferTimeout, then at doubling intervals capped
// at BackoffMax; after offerRenewAfter transmissions a fresh session replaces it.
func TestOfferRetransmissionSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLink()
		a := newMemPeer(t, l, newMemNet(), "10.0.0.1:5000", nil, "a", 1)
		start := time.Now()
		require.NoError(t, a.mgr.AddPeer("b", key.Key{2})) // b never answers
		time.Sleep(8 * time.Second)
		synctest.Wait()

		ids, at := offersBySession(l, "a", start)
		require.Len(t, ids, 2)
		// fastConfig: OfferTimeout 300ms, BackoffMax 1s.
		assert.Equal(t, []time.Duration{0, 300 * ms, 900 * ms, 1900 * ms, 2900 * ms, 3900 * ms, 4900 * ms, 5900 * ms}, at[ids[0]])
		assert.Equal(t, []time.Duration{6900 * ms, 7200 * ms, 7800 * ms}, at[ids[1]], "the fresh session starts over")
		st, _ := status(a.mgr, "b")
		assert.Equal(t, StateOffering, st.State)
		assert.Equal(t, 2, st.Sessions)
		assert.Zero(t, st.Failures)
	})
}

// Each session the peer ends is followed by a new offer after the restart backoff: BackoffMin
// doubled per consecutive failure, capped at BackoffMax, ±10 %.
func TestRestartBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLink()
		a := newMemPeer(t, l, newMemNet(), "10.0.0.1:5000", nil, "a", 1)
		require.NoError(t, a.mgr.AddPeer("b", key.Key{2}))
		synctest.Wait()
		for i, want := range []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second} {
			ids, _ := offersBySession(l, "a", time.Now())
			cur := ids[len(ids)-1]
			ended := time.Now()
			require.NoError(t, a.mgr.HandleSignal("b", encodeSignal(t, SignalMessage{Type: SignalRestart, Session: cur})))
			synctest.Wait()
			st, _ := status(a.mgr, "b")
			assert.Equal(t, StateWaiting, st.State, "after failure %d", i+1)
			assert.Equal(t, "peer ended the session", st.Reason)
			assert.Equal(t, i+1, st.Failures)

			time.Sleep(2 * time.Second)
			synctest.Wait()
			ids, at := offersBySession(l, "a", ended)
			next := ids[len(ids)-1]
			require.NotEqual(t, cur, next, "no new session after failure %d", i+1)
			assert.InDelta(t, want, at[next][0], float64(want/10), "the delay after failure %d", i+1)
		}
	})
}

// memPair connects two Managers on a memNet, a at 10.0.0.1:5000 and b at 10.0.0.2:5000; tweakA
// and tweakB, when not nil, change their configurations.
func memPair(t *testing.T, tweakA, tweakB func(*Config)) (n *memNet, l *link, a, b *testPeer) {
	n, l = newMemNet(), newLink()
	a = newMemPeer(t, l, n, "10.0.0.1:5000", tweakA, "a", 1)
	b = newMemPeer(t, l, n, "10.0.0.2:5000", tweakB, "b", 2)
	addEachOther(t, a, b)
	time.Sleep(time.Second)
	synctest.Wait()
	for _, x := range [][2]*testPeer{{a, b}, {b, a}} {
		st, _ := status(x[0].mgr, x[1].id)
		require.Equal(t, StateConnected, st.State, "%s to %s", x[0].id, x[1].id)
		require.Equal(t, x[1].addr, st.Path.Remote, "%s to %s", x[0].id, x[1].id)
	}
	return n, l, a, b
}

// firstOffer returns the first offer from sent at or after t0.
func firstOffer(l *link, from string, t0 time.Time) (sentSignal, bool) {
	for _, s := range l.signals(from, SignalOffer) {
		if !s.at.Before(t0) {
			return s, true
		}
	}
	return sentSignal{}, false
}

// When consent checks go unanswered, the path is reported lost once DisconnectedTimeout has
// passed without an answer (while connected, pion looks every KeepaliveInterval, and the last
// answer may have come up to one before the cut), and a new session is offered after the
// restart backoff. (b waits longer before it restarts, so that a's restart is the one seen.)
func TestLostPathRestartsAfterBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, l, a, b := memPair(t, nil, func(c *Config) { c.BackoffMin, c.BackoffMax = 5*time.Second, 5*time.Second })
		m := a.mark("b")
		cut := time.Now()
		n.setDown(b.addr, true)
		time.Sleep(time.Second)
		synctest.Wait()

		cfg := fastConfig() // DisconnectedTimeout 500ms, KeepaliveInterval 100ms, BackoffMin 100ms
		lost, ok := a.paths.lostAt(m.paths)
		require.True(t, ok, "the path was not reported lost")
		assert.GreaterOrEqual(t, lost.Sub(cut), cfg.DisconnectedTimeout, "lost too early")
		assert.LessOrEqual(t, lost.Sub(cut), cfg.DisconnectedTimeout+cfg.KeepaliveInterval, "lost too late")
		offer, ok := firstOffer(l, "a", lost)
		require.True(t, ok, "no new offer after the loss")
		assert.NotEqual(t, m.Session, offer.msg.Session)
		assert.InDelta(t, cfg.BackoffMin, offer.at.Sub(lost), float64(cfg.BackoffMin/10), "the restart's delay after the loss")
		st, _ := status(a.mgr, "b")
		assert.Equal(t, offer.msg.Session, st.Session)
		assert.Equal(t, m.Sessions+1, st.Sessions)
		assert.Equal(t, m.Failures+1, st.Failures)
		assert.Equal(t, "consent checks unanswered", st.Reason)
	})
}

// Checks that find no pair for troubleAfter make the peer report trouble, once, long before
// ICE's own timeouts would fail the session.
func TestSlowChecksReportTrouble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var trouble []time.Time
		a := newMemPeer(t, newLink(), newMemNet(), "10.0.0.1:5000", func(c *Config) {
			c.DisconnectedTimeout, c.FailedTimeout = time.Minute, time.Minute
			c.OnTrouble = func(string) {
				mu.Lock()
				trouble = append(trouble, time.Now())
				mu.Unlock()
			}
		}, "a", 1)
		require.NoError(t, a.mgr.AddPeer("b", key.Key{2}))
		synctest.Wait()
		st, _ := status(a.mgr, "b")
		// The test answers a's offer as b, with no candidate that could work.
		started := time.Now()
		require.NoError(t, a.mgr.HandleSignal("b", encodeSignal(t, SignalMessage{
			Type: SignalAnswer, Session: st.Session, Ufrag: "abcd", Pwd: "0123456789abcdefghijkl",
		})))
		time.Sleep(10 * time.Second)
		synctest.Wait()
		st, _ = status(a.mgr, "b")
		assert.Equal(t, StateChecking, st.State)
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, trouble, 1)
		assert.Equal(t, troubleAfter, trouble[0].Sub(started))
	})
}

// Close tells every peer its session ended, and waits finalSignalWait at most for a coordinator
// that does not answer.
func TestManagerCloseWithStuckCoordinator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		sent := map[string][]SignalType{}
		stuck := func(ctx context.Context, to string, b []byte) error {
			if msg, err := DecodeSignal(b); err == nil {
				mu.Lock()
				sent[to] = append(sent[to], msg.Type)
				mu.Unlock()
			}
			<-ctx.Done()
			return ctx.Err()
		}
		a := newMemPeer(t, newLink(), newMemNet(), "10.0.0.1:5000", func(c *Config) { c.Signal = stuck }, "a", 1)
		require.NoError(t, a.mgr.AddPeer("b", key.Key{2}))
		require.NoError(t, a.mgr.AddPeer("c", key.Key{3}))
		synctest.Wait()
		start := time.Now()
		require.NoError(t, a.mgr.Close())
		assert.Equal(t, finalSignalWait, time.Since(start), "the peers' final signals wait side by side")
		mu.Lock()
		defer mu.Unlock()
		for _, peer := range []string{"b", "c"} {
			types := sent[peer]
			require.NotEmpty(t, types, peer)
			assert.Equal(t, SignalOffer, types[0], "%s: stuck on the first offer", peer)
			assert.Equal(t, SignalRestart, types[len(types)-1], "%s: the final signal", peer)
		}
	})
}
