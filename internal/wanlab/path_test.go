//go:build linux

package wanlab

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The NFQUEUE impairment itself, on UDP datagrams from A to B: every datagram that arrives was
// held for at least the delay (a lower bound the mechanism guarantees, not a measured figure),
// the queue dropped some of them, and every datagram is accounted for — received by B, or
// dropped by the queue on purpose. Needs root (skips otherwise; NATLAB_REQUIRE=1 fails).
func TestPathDelaysAndDrops(t *testing.T) {
	const (
		delay = 40 * time.Millisecond
		loss  = 0.3
		sent  = 300
	)
	path := NewPath(t, Profile{Name: "smoke", RTT: 2 * delay, Loss: loss})
	rx, err := path.B.ListenUDP(0)
	require.NoError(t, err)
	defer rx.Close()
	tx, err := path.A.ListenUDP(0)
	require.NoError(t, err)
	defer tx.Close()
	to := netip.AddrPortFrom(path.B.IP(), uint16(rx.LocalAddr().(*net.UDPAddr).Port))

	var received, early atomic.Int64
	var minDelay atomic.Int64
	minDelay.Store(int64(time.Hour))
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 64)
		for {
			n, _, err := rx.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var at time.Time
			if at.UnmarshalBinary(buf[:n]) != nil {
				continue
			}
			d := time.Since(at)
			if d < delay {
				early.Add(1)
			}
			if int64(d) < minDelay.Load() {
				minDelay.Store(int64(d))
			}
			received.Add(1)
		}
	}()
	// Paced, so that B's socket buffer never overflows (that loss would not be the queue's).
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for range sent {
		stamp, err := time.Now().MarshalBinary()
		require.NoError(t, err)
		_, err = tx.WriteToUDPAddrPort(stamp, to)
		require.NoError(t, err)
		<-tick.C
	}
	require.Eventually(t, func() bool {
		st := path.Stats()[0]
		return st.Received == sent && received.Load() == int64(st.Received-st.Dropped)
	}, 10*time.Second, 10*time.Millisecond, "every datagram either received or dropped by the queue")
	rx.Close()
	<-readDone
	require.NoError(t, path.Err())
	st := path.Stats()[0]
	t.Logf("A→B: %d queued, %d dropped, %d received, shortest one-way delay %v",
		st.Received, st.Dropped, received.Load(), time.Duration(minDelay.Load()).Round(time.Microsecond))
	assert.Zero(t, early.Load(), "datagrams that arrived before the delay")
	assert.Greater(t, st.Dropped, uint64(sent/10), "the queue drops about %v of %d", loss, sent)
	assert.Less(t, st.Dropped, uint64(sent/2), "the queue drops about %v of %d", loss, sent)
}
