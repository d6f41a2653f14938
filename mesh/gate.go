package mesh

import (
	"sync/atomic"
	"time"
)

// wireguard-go gives every packet it holds a 64 KiB buffer, whatever the packet's size, and its
// queues are deep (1024 batches). Under a bulk transfer the packets of a whole TCP window sit in
// those queues, 46 times their size: that, not the data, is most of a node's memory under load.
// A queueGate bounds how many packets wireguard-go holds in one direction — between the tunnel's
// Read and the Bind's Send, or between the Bind's receive and the tunnel's Write — by making the
// entry point wait while the count is over the limit. The packets then wait where they are
// compact: in the netstack's send queue, or in the kernel's socket buffer.
//
// The gate counts packets in and out; it cannot see packets wireguard-go drops (no route, no
// session, a failed decryption), which would stay counted. So a wait is short: if nothing comes
// out for gateStall, the gate assumes the rest was dropped, forgets the count and lets the
// caller go on. A dropped packet thus costs at most one such stall per gate limit of them.

// gateLimit is how many packets wireguard-go may hold in one direction before the entry point
// waits: 4 MiB of its buffers, plus the batch in hand. A path that keeps up never holds that
// many; measured, 64 moved bulk TCP as fast as 256 or no limit at all, with less memory
// (BenchmarkTCPThroughput, BenchmarkPeakRSS).
const gateLimit = 64

// gateStall is how long a gate waits for a packet to come out before it gives up on its count.
const gateStall = 2 * time.Millisecond

type queueGate struct {
	limit   int64
	in, out atomic.Int64
	waiting atomic.Bool
	wake    chan struct{}
	timer   *time.Timer // used by the one waiting goroutine
}

func newQueueGate(limit int) *queueGate {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &queueGate{limit: int64(limit), wake: make(chan struct{}, 1), timer: t}
}

// enter counts n packets handed to wireguard-go.
func (g *queueGate) enter(n int) {
	if g != nil {
		g.in.Add(int64(n))
	}
}

// leave counts n packets that came out of wireguard-go, and wakes the waiter if there is one.
func (g *queueGate) leave(n int) {
	if g == nil {
		return
	}
	g.out.Add(int64(n))
	if g.waiting.Load() {
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
}

// held is how many packets wireguard-go holds by the gate's count.
func (g *queueGate) held() int64 { return g.in.Load() - g.out.Load() }

// wait returns once wireguard-go holds no more than the limit, when done is closed, or when
// nothing came out for gateStall (the count is then reset). Only one goroutine may wait at a
// time.
func (g *queueGate) wait(done <-chan struct{}) {
	if g == nil {
		return
	}
	if h := g.held(); h < 0 {
		// More came out than went in (a keepalive or handshake counted by mistake, a reset
		// racing a packet): never let that turn into credit.
		g.in.Add(-h)
	} else if h <= g.limit {
		return
	}
	g.waiting.Store(true)
	defer g.waiting.Store(false)
	for g.held() > g.limit {
		g.timer.Reset(gateStall)
		select {
		case <-g.wake:
			g.timer.Stop()
		case <-g.timer.C:
			// Nothing came out: what is still counted was dropped inside wireguard-go.
			g.in.Store(g.out.Load())
			return
		case <-done:
			g.timer.Stop()
			return
		}
	}
}
