package mesh

import (
	"context"
	"net/netip"
	"testing"
)

// TestLostInitiationRetriedEarly loses the first initiation to a peer that has no session: the
// Mesh retries it itself (retry.go), and that retry is the one answered — not wireguard-go's
// own retransmission 5 s later.
func TestLostInitiationRetriedEarly(t *testing.T) {
	ka, kb := orderedKeys(t, true) // a starts the handshake when it learns b
	a, b := startTestNode(t, 1, ka), startTestNode(t, 2, kb)
	l, err := b.m.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, l)
	tap := newWGTap(t, a.endpoint(), b.endpoint())
	tap.mu.Lock()
	tap.drop["a>b initiation"] = 1
	tap.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	bForA, aForB := b.asPeer(), a.asPeer()
	bForA.Endpoints = []netip.AddrPort{udpAddrPort(tap.forA)}
	aForB.Endpoints = []netip.AddrPort{udpAddrPort(tap.forB)}
	if err := b.m.SetPeers(ctx, []Peer{aForB}); err != nil {
		t.Fatal(err)
	}
	if err := a.m.SetPeers(ctx, []Peer{bForA}); err != nil {
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
