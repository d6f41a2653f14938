package mesh

import (
	"context"
	"testing"
)

// TestLostInitiationRetriedEarly loses the first initiation to a peer that has no session: the
// Mesh retries it itself (retry.go), and that retry is the one answered — not wireguard-go's
// own retransmission 5 s later.
func TestLostInitiationRetriedEarly(t *testing.T) {
	tp := newTappedPair(t, true) // a starts the handshake when it learns b
	a, b, tap := tp.a, tp.b, tp.tap
	tap.mu.Lock()
	tap.drop["a>b initiation"] = 1
	tap.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := b.m.SetPeers(ctx, []Peer{tp.aForB}); err != nil {
		t.Fatal(err)
	}
	if err := a.m.SetPeers(ctx, []Peer{tp.bForA}); err != nil {
		t.Fatal(err)
	}
	// The node applies its peer list again on every change the coordinator reports; that must
	// not cancel the retry of an unrelated, unanswered initiation.
	if err := a.m.SetPeers(ctx, []Peer{tp.bForA}); err != nil {
		t.Fatal(err)
	}
	if err := echoRoundTrip(ctx, a, "tcp", tcpAddr(b.v4, 80), []byte("after a lost initiation")); err != nil {
		t.Fatal(err)
	}
	if n := a.m.earlyRetries.Load(); n != 1 {
		t.Fatalf("%d early retries, want 1", n)
	}
	got := [2]int{tap.count("a>b initiation"), tap.count("b>a response")}
	if got != [2]int{2, 1} {
		t.Fatalf("a>b initiations %d, b>a responses %d; want 2, 1: the lost one and its early retry, answered", got[0], got[1])
	}
}
