package mesh

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nexodus-sdk/nexodus/key"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wgTap relays UDP between two meshes on 127.0.0.1 and counts the WireGuard messages it relays,
// by direction and kind: a sends to forA (b's address as a knows it), b to forB.
type wgTap struct {
	forA, forB *net.UDPConn
	wg         sync.WaitGroup

	mu     sync.Mutex
	counts map[string]int // "a>b initiation", "b>a response", ...
	drop   map[string]int // how many more messages of a kind to drop, by the same keys
}

func newWGTap(t *testing.T, a, b netip.AddrPort) *wgTap {
	t.Helper()
	tp := &wgTap{forA: listenUDP(t, "127.0.0.1:0"), forB: listenUDP(t, "127.0.0.1:0"), counts: map[string]int{}, drop: map[string]int{}}
	tp.wg.Add(2)
	go tp.relay(tp.forA, tp.forB, b, "a>b")
	go tp.relay(tp.forB, tp.forA, a, "b>a")
	t.Cleanup(func() {
		tp.forA.Close()
		tp.forB.Close()
		tp.wg.Wait()
	})
	return tp
}

func (tp *wgTap) relay(from, out *net.UDPConn, to netip.AddrPort, dir string) {
	defer tp.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, _, err := from.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		what := dir + " " + classify(buf[:n]).String()
		tp.mu.Lock()
		tp.counts[what]++
		drop := tp.drop[what] > 0
		if drop {
			tp.drop[what]--
		}
		tp.mu.Unlock()
		if !drop {
			out.WriteToUDPAddrPort(buf[:n], to)
		}
	}
}

func (tp *wgTap) count(what string) int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.counts[what]
}

// dropNext makes the tap drop the next n messages of a kind ("a>b initiation").
func (tp *wgTap) dropNext(what string, n int) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.drop[what] += n
}

// tappedPair is two meshes whose WireGuard messages go through a wgTap, with an echo server on
// b:80; bForA and aForB are the peers to configure (their endpoints point at the tap). Neither
// mesh has peers yet. aFirst makes a the preferred initiator.
type tappedPair struct {
	a, b         *testNode
	tap          *wgTap
	bForA, aForB Peer
}

func newTappedPair(t *testing.T, aFirst bool) tappedPair {
	t.Helper()
	ka, kb := orderedKeys(t, aFirst)
	tp := tappedPair{a: startTestNode(t, 1, ka), b: startTestNode(t, 2, kb)}
	tp.b.listenEcho(t, ":80")
	tp.tap = newWGTap(t, tp.a.endpoint(), tp.b.endpoint())
	tp.bForA, tp.aForB = tp.b.asPeer(), tp.a.asPeer()
	tp.bForA.Endpoints = []netip.AddrPort{localAddrPort(tp.tap.forA)}
	tp.aForB.Endpoints = []netip.AddrPort{localAddrPort(tp.tap.forB)}
	return tp
}

// has reports whether an initiation from pub is held for replay.
func (h *heldInitiations) has(pub key.Key) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.byKey[pub]
	return ok
}

// TestFirstDialToJustAddedPeer dials a peer that does not know the dialer yet: the dialer's
// initiation reaches a node that drops what it cannot attribute to a peer. The first packet
// must not stall for wireguard-go's 5 s retry: the node holds the initiation and replays it
// when it learns the peer. Asserted is that exactly one handshake happened — the dialer's first
// initiation, answered once — which fails without the replay whichever side initiates: either
// the dialer has to send its initiation again, or the other node starts a handshake of its own.
func TestFirstDialToJustAddedPeer(t *testing.T) {
	for _, dialerFirst := range []bool{true, false} {
		name := "dialer-is-preferred-initiator"
		if !dialerFirst {
			name = "dialer-is-not-preferred-initiator"
		}
		t.Run(name, func(t *testing.T) {
			tp := newTappedPair(t, dialerFirst)
			a, b, tap := tp.a, tp.b, tp.tap
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			require.NoError(t, a.m.SetPeers(ctx, []Peer{tp.bForA}))
			start := time.Now()
			dialed := make(chan error, 1)
			go func() { dialed <- echoRoundTrip(ctx, a, "tcp", tcpAddr(b.v4, 80), []byte("first")) }()
			// a's initiation reached b, which does not know a and keeps it; only then does b
			// learn about a.
			require.Eventually(t, func() bool { return b.m.bind.held.has(a.pub) }, testTimeout, pollEvery,
				"b holds no initiation from a")
			require.NoError(t, b.m.SetPeers(ctx, []Peer{tp.aForB}))
			require.NoError(t, <-dialed)
			t.Logf("first byte after %v", time.Since(start).Round(time.Millisecond))
			got := [3]int{tap.count("a>b initiation"), tap.count("b>a initiation"), tap.count("b>a response")}
			require.Equal(t, [3]int{1, 0, 1}, got,
				"handshake messages a>b initiations, b>a initiations, b>a responses: a's first initiation replayed and answered")
		})
	}
}

// handshakeBind is a Bind on no socket for the node with private key priv.
func handshakeBind(priv key.Key) *bind {
	return newBind(newCaptureIO(), newInitiatorIdentifier(priv), priv.Public(), nil, discardLogger())
}

// injectedNow returns what the Bind queued for wireguard-go's injection ReceiveFunc.
func injectedNow(b *bind) []injected {
	var out []injected
	for {
		select {
		case in := <-b.inject:
			out = append(out, in)
		default:
			return out
		}
	}
}

// TestHeldInitiationReplay holds, in virtual time, an initiation from a key that is not a peer
// yet, and checks that adding the peer replays it only while it is fresh (heldInitiationTTL).
func TestHeldInitiationReplay(t *testing.T) {
	// The initiator has the smaller key: the responder is not the preferred initiator, so the
	// crossing tie-break stays out of the way.
	privI, privR := orderedKeys(t, true)
	pubI := privI.Public()
	pkt, _ := initiationFrom(t, privI, privR.Public())
	src := ap("192.0.2.1:5000")
	for _, tc := range []struct {
		name   string
		after  time.Duration
		replay bool
	}{
		{"at once", 0, true},
		{"at the TTL", heldInitiationTTL, true},
		{"after the TTL", heldInitiationTTL + time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := handshakeBind(privR)
				require.Nil(t, r.demux(pkt, src), "initiation from an unknown key handed on")
				require.True(t, r.held.has(pubI))
				time.Sleep(tc.after)
				r.upsertPeer(pubI, nil)
				require.Equal(t, tc.replay, r.activate(pubI), "replayed")
				require.False(t, r.held.has(pubI), "still held after activate")
				got := injectedNow(r)
				if tc.replay {
					require.Len(t, got, 1)
					require.Equal(t, pkt, got[0].pkt)
					require.Equal(t, src, got[0].src)
				} else {
					require.Empty(t, got)
				}
				// Active now: the peer's initiations go on to wireguard-go.
				ep, ok := r.demux(pkt, src).(*endpoint)
				require.True(t, ok, "initiation of an active peer not handed on")
				require.Equal(t, pubI, ep.peer.key)
			})
		})
	}
}

// TestCrossingInitiation runs the crossing tie-break in virtual time: the preferred initiator
// holds the peer's initiation while its own is in flight, and replays it crossingHold later
// unless its own was answered meanwhile.
func TestCrossingInitiation(t *testing.T) {
	privR, privI := orderedKeys(t, true) // the receiver of the crossing initiation is preferred
	pubI := privI.Public()
	pkt, _ := initiationFrom(t, privI, privR.Public())
	src := ap("192.0.2.1:5000")
	const ourIndex = 7
	for _, tc := range []struct {
		name     string
		after    time.Duration // from our initiation to the peer's
		answered bool          // our initiation is answered before crossingHold
		held     bool
		replay   bool
	}{
		{"unanswered", 0, false, true, true},
		{"answered", 0, true, true, false},
		{"late in the window", crossingWindow, false, true, true},
		{"after the window", crossingWindow + time.Millisecond, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := handshakeBind(privR)
				var answers []key.Key
				r.onAnswer = func(pub key.Key) { answers = append(answers, pub) }
				p, _, _ := r.upsertPeer(pubI, nil)
				r.peers.rememberIndex(p, ourIndex)
				// Nothing to replay: as the preferred initiator, our initiation is announced.
				require.False(t, r.activate(pubI))
				require.True(t, crossInFlight(p), "our initiation not in flight")
				time.Sleep(tc.after)

				ep := r.demux(pkt, src)
				require.Equal(t, tc.held, ep == nil, "peer's initiation held")
				if !tc.held {
					return
				}
				require.Nil(t, r.demux(pkt, src), "the peer's retry while one is held")
				if tc.answered {
					r.demux(response(ourIndex), src)
					require.Equal(t, []key.Key{pubI}, answers, "answer reported")
					require.False(t, crossInFlight(p), "answered initiation still in flight")
				}
				time.Sleep(crossingHold - time.Millisecond)
				synctest.Wait()
				require.Empty(t, injectedNow(r), "replayed before crossingHold")
				time.Sleep(time.Millisecond)
				synctest.Wait()
				got := injectedNow(r)
				if !tc.replay {
					require.Empty(t, got, "replayed although ours was answered")
					return
				}
				require.Len(t, got, 1)
				require.Equal(t, pkt, got[0].pkt)
				require.False(t, got[0].fresh, "a replay goes through the tie-break again")
				assert.False(t, crossHeldNow(p), "still marked as held")
			})
		})
	}
}

// TestCrossingInitiationNoPath: the preferred initiator's own initiation finds no path to the
// peer (it knows no address of the peer yet, as when the peer sits behind a NAT and ICE has
// not pinned a pair). The peer's initiation, held back while ours was announced, is then
// replayed at once — not crossingHold later, which on a WAN was a fixed extra 250 ms on the
// first Dial.
func TestCrossingInitiationNoPath(t *testing.T) {
	privR, privI := orderedKeys(t, true) // the receiver of the peer's initiation is preferred
	pubI := privI.Public()
	pkt, _ := initiationFrom(t, privI, privR.Public())
	ours, _ := initiationFrom(t, privR, pubI)
	src := ap("192.0.2.1:5000")
	synctest.Test(t, func(t *testing.T) {
		r := handshakeBind(privR)
		p, _, _ := r.upsertPeer(pubI, nil) // no published address
		require.False(t, r.activate(pubI))
		require.Nil(t, r.demux(pkt, src), "peer's initiation held while ours is announced")
		require.Empty(t, injectedNow(r))
		require.ErrorIs(t, r.Send([][]byte{ours}, p.ep), errNoPath)
		got := injectedNow(r)
		require.Len(t, got, 1, "replayed as soon as ours found no path")
		require.Equal(t, pkt, got[0].pkt)
		require.Equal(t, src, got[0].src)
		require.False(t, crossInFlight(p), "an initiation that went nowhere is not in flight")
		time.Sleep(crossingHold)
		synctest.Wait()
		require.Empty(t, injectedNow(r), "replayed twice")
		// A new initiation of the peer now goes on to wireguard-go.
		require.NotNil(t, r.demux(pkt, src))
	})
}

func crossInFlight(p *peerState) bool {
	p.crossMu.Lock()
	defer p.crossMu.Unlock()
	return p.cross.inFlight(time.Now())
}

func crossHeldNow(p *peerState) bool {
	p.crossMu.Lock()
	defer p.crossMu.Unlock()
	return p.cross.heldNow()
}
