package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// memRelay stands in for a TURN relay: what one mesh sends through its relay route is handed
// to the other mesh's InjectPacket. Once cut, it drops everything.
type memRelay struct {
	cut     atomic.Bool
	carried atomic.Int64
}

// route returns the send function for packets from node from to node to.
func (r *memRelay) route(from, to *testNode) func([]byte) error {
	return func(b []byte) error {
		if r.cut.Load() {
			return nil // lost, as on a dead relay
		}
		r.carried.Add(1)
		// The relay must not keep b: InjectPacket copies it. Scribble over it after the call
		// to prove that.
		err := to.m.InjectPacket(from.pub, b)
		for i := range b {
			b[i] = 0xee
		}
		return err
	}
}

// blackHole returns an address on 127.0.0.1 where datagrams vanish (a socket nobody reads).
func blackHole(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// TestRelayRoute connects two meshes whose published endpoints lead nowhere through an
// in-memory relay, then moves them to the socket with SetPeerPath while a TCP connection stays
// open, and back to the relay.
func TestRelayRoute(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	hole := blackHole(t)
	pa, pb := a.asPeer(), b.asPeer()
	pa.Endpoints, pb.Endpoints = []netip.AddrPort{hole}, []netip.AddrPort{hole}
	if err := a.m.SetPeers(context.Background(), []Peer{pb}); err != nil {
		t.Fatal(err)
	}
	if err := b.m.SetPeers(context.Background(), []Peer{pa}); err != nil {
		t.Fatal(err)
	}

	relay := &memRelay{}
	// The side that is not the preferred initiator first, as ICE's controlled agent selects
	// its pair before the controlling one.
	first, second := a, b
	if a.m.bind.preferredInitiator(b.pub) {
		first, second = b, a
	}
	other := func(n *testNode) *testNode {
		if n == a {
			return b
		}
		return a
	}
	for _, n := range []*testNode{first, second} {
		if err := n.m.SetPeerRelay(other(n).pub, relay.route(n, other(n))); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*testNode{a, b} {
		if st := n.m.Peers()[0]; !st.Relayed || st.Endpoint.IsValid() || st.Pinned || st.PathSince.IsZero() {
			t.Fatalf("status while relayed: %+v", st)
		}
	}

	l, err := b.m.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := a.m.DialContext(ctx, "tcp", tcpAddr(b.v4, 80))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	roundTrip := func(what string, payload []byte) {
		t.Helper()
		errc := make(chan error, 1)
		go func() {
			_, err := c.Write(payload)
			errc <- err
		}()
		got := make([]byte, len(payload))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("%s: read echo: %v", what, err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("%s: write: %v", what, err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("%s: echo differs", what)
		}
	}
	roundTrip("relayed", randomBytes(t, 256<<10))
	if relay.carried.Load() == 0 {
		t.Fatal("nothing went through the relay")
	}
	for _, n := range []*testNode{a, b} {
		if st := n.m.Peers()[0]; !st.Relayed || st.RxBytes == 0 || st.TxBytes == 0 {
			t.Fatalf("status after relayed traffic: %+v", st)
		}
	}

	// Direct: pin the socket path on both sides and cut the relay. The same connection goes on.
	if err := a.m.SetPeerPath(b.pub, b.endpoint()); err != nil {
		t.Fatal(err)
	}
	if err := b.m.SetPeerPath(a.pub, a.endpoint()); err != nil {
		t.Fatal(err)
	}
	relay.cut.Store(true)
	for _, n := range []*testNode{a, b} {
		if st := n.m.Peers()[0]; st.Relayed || st.Endpoint != other(n).endpoint() || !st.Pinned {
			t.Fatalf("status after SetPeerPath: %+v", st)
		}
	}
	roundTrip("direct", randomBytes(t, 256<<10))

	// Relayed again through a fresh relay, then back to the published endpoints (now the real
	// ones) with SetPeerRelay(nil).
	relay2 := &memRelay{}
	for _, n := range []*testNode{first, second} {
		if err := n.m.SetPeerRelay(other(n).pub, relay2.route(n, other(n))); err != nil {
			t.Fatal(err)
		}
	}
	roundTrip("relayed again", randomBytes(t, 64<<10))
	if relay2.carried.Load() == 0 {
		t.Fatal("nothing went through the second relay")
	}
	connectAll(t, a, b) // publish the real endpoints
	for _, n := range []*testNode{a, b} {
		if st := n.m.Peers()[0]; !st.Relayed {
			t.Fatalf("a change of published endpoints left the relay: %+v", st)
		}
		if err := n.m.SetPeerRelay(other(n).pub, nil); err != nil {
			t.Fatal(err)
		}
	}
	relay2.cut.Store(true)
	roundTrip("unrelayed", randomBytes(t, 64<<10))
	// The path is learned when wireguard-go next sends to the address the peer's packets came
	// from; after the echo that may be the receiver's delayed ACK, a moment later.
	eventually(t, 20*time.Second, func() error {
		for _, n := range []*testNode{a, b} {
			if st := n.m.Peers()[0]; st.Relayed || st.Endpoint != other(n).endpoint() || st.Pinned {
				return fmt.Errorf("status after leaving the relay: %+v", st)
			}
		}
		return nil
	})
}

func TestRelayErrors(t *testing.T) {
	a, b := newTestNode(t, 1), newTestNode(t, 2)
	connectAll(t, a, b)
	if err := a.m.SetPeerRelay([32]byte{1}, func([]byte) error { return nil }); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("relay for unknown peer: %v", err)
	}
	if err := a.m.InjectPacket(b.pub, []byte("not wireguard")); err == nil {
		t.Fatal("injected a non-WireGuard datagram")
	}
	// Messages injected for the wrong peer, or from no peer, are dropped, not delivered.
	bogus := make([]byte, sizeInitiation)
	bogus[0] = 1
	if err := a.m.InjectPacket([32]byte{2}, bogus); err != nil {
		t.Fatalf("inject from unknown key: %v", err)
	}
	a.m.Close()
	if err := a.m.SetPeerRelay(b.pub, nil); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("relay after close: %v", err)
	}
	if err := a.m.InjectPacket(b.pub, bogus); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("inject after close: %v", err)
	}
}
