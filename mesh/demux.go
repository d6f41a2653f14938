package mesh

// This file holds the Bind's receive path: the ReceiveFuncs it gives wireguard-go (the socket
// and the injection queue), and the demultiplexer that works out, for every datagram, whether
// it is WireGuard's and from which peer.

import (
	"errors"
	"net"
	"net/netip"

	"github.com/nexodus-sdk/nexodus/key"
	"golang.zx2c4.com/wireguard/conn"
)

// injectQueue is how many datagrams may wait for the injection ReceiveFunc (relayed traffic,
// replayed initiations).
const injectQueue = 512

// injected is a datagram fed to wireguard-go through the injection ReceiveFunc.
type injected struct {
	pkt []byte
	src netip.AddrPort
	// fresh: the datagram has not been through the Bind's demultiplexer yet (a relayed one),
	// as opposed to a replayed initiation, which the crossing tie-break already held once.
	fresh bool
}

func (b *bind) receiveFunc(gen uint64, done chan struct{}) conn.ReceiveFunc {
	srcs := make([]netip.AddrPort, b.io.batchSize())
	return func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		for {
			if b.gen.Load() != gen {
				return 0, net.ErrClosed
			}
			if len(srcs) < len(bufs) {
				// wireguard-go's batch is the larger of the Bind's and the TUN's; with GRO a
				// read may fill every buffer it gets.
				srcs = make([]netip.AddrPort, len(bufs))
			}
			b.rx.wait(done)
			n, err := b.io.read(bufs, sizes, srcs)
			if err != nil {
				if b.gen.Load() != gen || errors.Is(err, net.ErrClosed) {
					return 0, net.ErrClosed
				}
				return 0, err
			}
			delivered, data := 0, 0
			var cache indexCache // one batch: the datagrams read together
			for i := 0; i < n; i++ {
				ep := b.classifyAndMap(bufs[i][:sizes[i]], srcs[i], true, &cache)
				if ep == nil {
					sizes[i] = 0
					eps[i] = nil
					continue
				}
				eps[i] = ep
				delivered++
				if carriesPacket(bufs[i][:sizes[i]]) {
					data++
				}
			}
			b.rx.enter(data)
			if delivered > 0 {
				return n, nil
			}
		}
	}
}

// injectFunc is the second ReceiveFunc: it hands wireguard-go datagrams that did not come from
// the socket read loop (replayed initiations, packets that arrived by relay). It waits for one
// and takes whatever else is queued, up to a batch.
func (b *bind) injectFunc(done chan struct{}) conn.ReceiveFunc {
	return func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n := 0
		take := func(in injected) {
			if len(in.pkt) > len(bufs[n]) {
				return
			}
			size := copy(bufs[n], in.pkt)
			ep := b.classifyAndMap(bufs[n][:size], in.src, in.fresh, nil)
			if ep == nil {
				return
			}
			sizes[n], eps[n] = size, ep
			n++
			if carriesPacket(bufs[n-1][:size]) {
				b.rx.enter(1)
			}
		}
		for n == 0 {
			select {
			case <-done:
				return 0, net.ErrClosed
			case in := <-b.inject:
				take(in)
			}
		}
		for n < len(bufs) {
			select {
			case in := <-b.inject:
				take(in)
			default:
				return n, nil
			}
		}
		return n, nil
	}
}

// injectPacket queues a datagram for wireguard-go as if it had arrived on the socket from src.
// It never blocks: when the queue is full the datagram is dropped (as the network might).
func (b *bind) injectPacket(pkt []byte, src netip.AddrPort) bool {
	return b.enqueue(injected{pkt: pkt, src: src})
}

// injectRelayed queues a datagram that arrived by relay from the peer with this key. pkt must
// not be modified afterwards. Like injectPacket it never blocks.
func (b *bind) injectRelayed(pub key.Key, pkt []byte) bool {
	return b.enqueue(injected{pkt: pkt, src: relayAddr(pub), fresh: true})
}

func (b *bind) enqueue(in injected) bool {
	select {
	case b.inject <- in:
		return true
	default:
		return false
	}
}

// demux classifies one datagram. WireGuard messages get the endpoint to hand to wireguard-go;
// everything else goes to onPacket, and demux returns nil (also for messages it holds back).
func (b *bind) demux(pkt []byte, src netip.AddrPort) conn.Endpoint {
	return b.classifyAndMap(pkt, src, true, nil)
}

// classifyAndMap is demux; mayHold false is for replayed packets, which the crossing tie-break
// already held once. cache may be nil.
func (b *bind) classifyAndMap(pkt []byte, src netip.AddrPort, mayHold bool, cache *indexCache) conn.Endpoint {
	kind := classify(pkt)
	relayed := isRelayAddr(src)
	if kind == kindOther {
		if relayed {
			return nil // the relay's user hands over WireGuard messages only
		}
		if b.onPacket != nil {
			b.onPacket(pkt, src)
		}
		return nil
	}
	var p *peerState
	if idx, ok := receiverIndex(kind, pkt); ok {
		p = b.peers.byIdx(idx, cache)
		if p != nil && kind == kindResponse {
			p.initSentAt.Store(0)
			b.initiationAnswered(p)
			if b.onAnswer != nil {
				b.onAnswer(p.key)
			}
		}
	} else if kind == kindInitiation && b.ident != nil {
		if pub, ok := b.ident.initiator(pkt); ok {
			p = b.peers.get(pub)
			if b.held.hold(p, pub, pkt, src) {
				return nil
			}
			if mayHold && b.holdCrossingInitiation(p, pkt, src) {
				return nil
			}
		}
	}
	if relayed {
		// By relay: the peer's key endpoint, whatever its path, so that wireguard-go's roaming
		// never sees the pseudo address; replies follow the peer's path (the relay route while
		// it is relayed). A message that belongs to no peer, or to another peer than the one
		// the relay delivered it for, is dropped.
		if p == nil || relayAddr(p.key) != src {
			return nil
		}
		return p.ep
	}
	if p == nil {
		return b.plain.get(src)
	}
	if p.path.current() == src {
		return p.ep
	}
	return p.observedEndpoint(src)
}
