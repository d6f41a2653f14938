package mesh

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCrossingStates runs the tie-break's state machine through sequences of events at given
// times, with no Bind and no timers: what happens to the peer's initiation, and what is
// replayed when.
func TestCrossingStates(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	pkt := []byte("peer's initiation")
	src := netip.MustParseAddrPort("192.0.2.1:5000")

	t.Run("nothing of ours in flight: pass", func(t *testing.T) {
		var c crossing
		d, _ := c.peerInitiation(at(0), pkt, src)
		assert.Equal(t, crossPass, d)
	})
	t.Run("sent and answered: held, then dropped", func(t *testing.T) {
		var c crossing
		c.expect(at(0))
		_, replay := c.initiationSent(at(0), true)
		require.False(t, replay)
		d, gen := c.peerInitiation(at(20*time.Millisecond), pkt, src)
		require.Equal(t, crossHold, d)
		d, _ = c.peerInitiation(at(30*time.Millisecond), pkt, src)
		require.Equal(t, crossDrop, d, "the peer's retry while one is held")
		c.answered()
		_, replay = c.expired(gen)
		assert.False(t, replay, "answered: the held one is discarded")
		assert.False(t, c.inFlight(at(40*time.Millisecond)))
	})
	t.Run("sent, unanswered: replayed when the hold expires", func(t *testing.T) {
		var c crossing
		c.initiationSent(at(0), true)
		d, gen := c.peerInitiation(at(10*time.Millisecond), pkt, src)
		require.Equal(t, crossHold, d)
		r, replay := c.expired(gen)
		require.True(t, replay)
		assert.Equal(t, crossReplay{pkt: pkt, src: src}, r)
		assert.False(t, c.heldNow())
	})
	t.Run("announced, found no path: replayed at once", func(t *testing.T) {
		var c crossing
		c.expect(at(0))
		d, gen := c.peerInitiation(at(time.Millisecond), pkt, src)
		require.Equal(t, crossHold, d, "an announced initiation counts as in flight")
		r, replay := c.initiationSent(at(2*time.Millisecond), false)
		require.True(t, replay)
		assert.Equal(t, pkt, r.pkt)
		assert.False(t, c.inFlight(at(3*time.Millisecond)), "nothing went out")
		_, replay = c.expired(gen)
		assert.False(t, replay, "the timer finds nothing left")
		d, _ = c.peerInitiation(at(4*time.Millisecond), pkt, src)
		assert.Equal(t, crossPass, d)
	})
	t.Run("no path now, but an earlier initiation still in flight: keep holding", func(t *testing.T) {
		var c crossing
		c.initiationSent(at(0), true)
		d, gen := c.peerInitiation(at(10*time.Millisecond), pkt, src)
		require.Equal(t, crossHold, d)
		_, replay := c.initiationSent(at(20*time.Millisecond), false)
		require.False(t, replay)
		_, replay = c.expired(gen)
		assert.True(t, replay)
	})
	t.Run("never sent: the announcement lapses after the window", func(t *testing.T) {
		var c crossing
		c.expect(at(0))
		assert.True(t, c.inFlight(at(crossingWindow)))
		d, _ := c.peerInitiation(at(crossingWindow+time.Millisecond), pkt, src)
		assert.Equal(t, crossPass, d)
	})
	t.Run("a timer of an earlier hold does not release a later one", func(t *testing.T) {
		var c crossing
		c.initiationSent(at(0), true)
		_, gen1 := c.peerInitiation(at(time.Millisecond), pkt, src)
		_, replay := c.expired(gen1)
		require.True(t, replay)
		c.initiationSent(at(300*time.Millisecond), true)
		d, gen2 := c.peerInitiation(at(301*time.Millisecond), pkt, src)
		require.Equal(t, crossHold, d)
		_, replay = c.expired(gen1)
		assert.False(t, replay, "stale timer")
		_, replay = c.expired(gen2)
		assert.True(t, replay)
	})
}
