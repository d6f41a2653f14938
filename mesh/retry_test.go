package mesh

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nexodus-sdk/nexodus/key"
	"github.com/stretchr/testify/require"
)

// retryLog is a handshakeRetrier whose retries are recorded, in virtual time since start, and
// send an initiation (report sent) as the Mesh's do.
type retryLog struct {
	mu    sync.Mutex // the retrier's serialize lock: guards fired
	start time.Time
	fired []time.Duration
	r     *handshakeRetrier
}

func newRetryLog() *retryLog {
	l := &retryLog{start: time.Now()}
	l.r = newHandshakeRetrier(handshakeRetries, &l.mu, func(pub key.Key) {
		l.fired = append(l.fired, time.Since(l.start))
		l.r.sent(pub)
	})
	return l
}

// take returns the retries so far and starts counting afresh from now.
func (l *retryLog) take() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fired
	l.fired, l.start = nil, time.Now()
	return f
}

// TestHandshakeRetrier runs the early-retry schedule in virtual time.
func TestHandshakeRetrier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newRetryLog()
		pub, other := key.Key{1}, key.Key{2}
		const long = time.Minute

		// An unanswered initiation is retried after 1 s and 2 s more, then left to wireguard-go.
		l.r.sent(pub)
		l.r.sent(pub) // another initiation while a retry is armed arms nothing more
		time.Sleep(long)
		require.Equal(t, []time.Duration{time.Second, 3 * time.Second}, l.take())
		l.r.sent(pub) // wireguard-go's own retransmission: the early retries are used up
		time.Sleep(long)
		require.Empty(t, l.take())

		// An answer starts them afresh.
		l.r.answered(pub)
		l.r.sent(pub)
		time.Sleep(long)
		require.Equal(t, []time.Duration{time.Second, 3 * time.Second}, l.take())

		// Stopping one peer (removed, or a fresh handshake) leaves the others' retries alone.
		l.r.stop(pub)
		l.r.sent(pub)
		l.r.sent(other)
		time.Sleep(500 * time.Millisecond)
		l.r.stop(pub)
		time.Sleep(long)
		require.Equal(t, []time.Duration{time.Second, 3 * time.Second}, l.take(), "the other peer's retries")

		// After close, nothing is armed and nothing fires.
		l.r.stop(pub, other)
		l.r.sent(pub)
		l.r.close()
		l.r.sent(other)
		time.Sleep(long)
		require.Empty(t, l.take())
	})
}

// TestLostInitiationRetriedEarly loses the first initiation to a peer that has no session: the
// Mesh retries it itself (retry.go), and that retry is the one answered — not wireguard-go's
// own retransmission 5 s later.
func TestLostInitiationRetriedEarly(t *testing.T) {
	tp := newTappedPair(t, true) // a starts the handshake when it learns b
	a, b, tap := tp.a, tp.b, tp.tap
	tap.dropNext("a>b initiation", 1)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	require.NoError(t, b.m.SetPeers(ctx, []Peer{tp.aForB}))
	require.NoError(t, a.m.SetPeers(ctx, []Peer{tp.bForA}))
	// The node applies its peer list again on every change the coordinator reports; that must
	// not cancel the retry of an unrelated, unanswered initiation.
	require.NoError(t, a.m.SetPeers(ctx, []Peer{tp.bForA}))
	require.NoError(t, echoRoundTrip(ctx, a, "tcp", tcpAddr(b.v4, 80), []byte("after a lost initiation")))
	require.EqualValues(t, 1, a.m.earlyRetries.Load(), "early retries")
	got := [2]int{tap.count("a>b initiation"), tap.count("b>a response")}
	require.Equal(t, [2]int{2, 1}, got, "a>b initiations, b>a responses: the lost one and its early retry, answered")
}
