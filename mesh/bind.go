package mesh

// This file holds the Bind itself: its state, its life cycle (Open and Close), its send path,
// and the registration of peers. The receive path is in demux.go, the endpoints in endpoint.go,
// the peer table in peertable.go and the first-handshake logic in handshake.go.

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexodus-sdk/nexodus/key"
	"golang.zx2c4.com/wireguard/conn"
)

var errNoPath = errors.New("mesh: peer has no endpoint to send to")

// bind is the conn.Bind of a Mesh: it owns no socket itself but reads and writes the Mesh's one
// UDP socket (through a packetIO, batched where the platform can).
//
// Endpoints are keyed by peer public key. wireguard-go is configured with endpoint=<hex public
// key> for every peer; ParseEndpoint turns that into the peer's key endpoint, whose destination
// is whatever the peer's pathSelector says at the moment of each Send. Changing a peer's path is
// therefore a Bind-local operation that wireguard-go never sees.
//
// Receiving, the Bind works out which peer a WireGuard message comes from before wireguard-go
// does, exactly rather than by source address:
//   - responses, cookie replies and transport messages carry a receiver index that this node
//     chose; the Bind learns which peer each index belongs to from the initiations and
//     responses it sends (sender index), so it can map any of them back to the peer;
//   - an initiation carries the initiator's static key, encrypted to us; the Bind decrypts it
//     (one X25519, see initiatorIdentifier).
//
// A message from the peer's current path is handed to wireguard-go with the peer's key
// endpoint, so wireguard-go's roaming (SetEndpointFromPacket) keeps the key endpoint. A message
// from any other address is handed over with an observed endpoint {peer, source address}. If
// wireguard-go authenticates the message it makes that the peer's endpoint, and the next time it
// sends through it the Bind learns the address as the peer's path (pathSelector.learn) — the
// moment wireguard-go itself would have roamed. From then on packets from that address map to
// the key endpoint again. Messages that belong to no peer get a plain address endpoint;
// wireguard-go drops them.
type bind struct {
	io       packetIO
	log      *slog.Logger
	onPacket func(b []byte, from netip.AddrPort)
	ident    *initiatorIdentifier
	pub      key.Key // our public key

	// tx counts packets from the tunnel until they leave by Send, rx packets from the socket
	// until the tunnel's Write; nil gates count nothing (see queueGate).
	tx, rx *queueGate

	// onInitiation and onAnswer, if set, learn that an initiation to a peer went out and that
	// the peer answered one (the Mesh's early handshake retries, retry.go). They must not
	// block.
	onInitiation, onAnswer func(pub key.Key)

	// runMu serializes Open and Close and guards done, which is non-nil while the Bind is open
	// and closed by Close to stop the injection ReceiveFunc. gen, bumped by both, is read
	// lock-free: a ReceiveFunc of an older generation returns net.ErrClosed.
	runMu sync.Mutex
	done  chan struct{}
	gen   atomic.Uint64

	inject chan injected // datagrams handed to wireguard-go as if read from the socket

	// Each of these has its own lock, held only inside its methods.
	peers peerTable       // peers by key and handshake index
	held  heldInitiations // initiations kept for replay; also each peer's active flag
	plain endpointCache   // endpoints of packets that belong to no peer
}

func newBind(io packetIO, ident *initiatorIdentifier, pub key.Key, onPacket func([]byte, netip.AddrPort), log *slog.Logger) *bind {
	return &bind{
		io:       io,
		log:      log,
		onPacket: onPacket,
		ident:    ident,
		pub:      pub,
		inject:   make(chan injected, injectQueue),
		peers:    newPeerTable(),
		held:     newHeldInitiations(),
		plain:    newEndpointCache(nil, maxPlainEndpoints),
	}
}

// Open implements conn.Bind. The socket is already bound; port is ignored.
func (b *bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.runMu.Lock()
	defer b.runMu.Unlock()
	if b.done != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	gen := b.gen.Add(1)
	if err := b.io.resume(); err != nil {
		return nil, 0, fmt.Errorf("mesh: open bind: %w", err)
	}
	b.done = make(chan struct{})
	return []conn.ReceiveFunc{b.receiveFunc(gen, b.done), b.injectFunc(b.done)}, b.io.localAddr().Port(), nil
}

// Close implements conn.Bind: it stops the ReceiveFuncs but leaves the socket open (the Mesh
// owns it and closes it after the device). A Bind is not closed for good: Open opens it again,
// and wireguard-go closes it before every Open, so closing a closed Bind is a no-op that returns
// nil — the one exception to the package's rule for Close, which conn.Bind's contract makes.
func (b *bind) Close() error {
	b.runMu.Lock()
	defer b.runMu.Unlock()
	if b.done == nil {
		return nil
	}
	b.gen.Add(1)
	close(b.done)
	b.done = nil
	return b.io.interrupt()
}

// SetMark implements conn.Bind. Marks are not supported (they need CAP_NET_ADMIN anyway).
func (b *bind) SetMark(uint32) error { return nil }

// BatchSize implements conn.Bind.
func (b *bind) BatchSize() int { return b.io.batchSize() }

// ParseEndpoint implements conn.Bind: a 64-digit hex public key gives that peer's key endpoint
// (the peer must have been registered with upsertPeer); anything else is parsed as ip:port and
// gives a plain endpoint.
func (b *bind) ParseEndpoint(s string) (conn.Endpoint, error) {
	if pub, err := key.ParseHex(s); err == nil {
		p := b.peers.get(pub)
		if p == nil {
			return nil, fmt.Errorf("mesh: endpoint for unknown peer %s", s[:8])
		}
		return p.ep, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, fmt.Errorf("mesh: parse endpoint: %w", err)
	}
	return b.plain.get(unmapAddrPort(ap)), nil
}

// Send implements conn.Bind.
func (b *bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(*endpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	if len(bufs) == 0 {
		return nil
	}
	p := e.peer
	if p == nil {
		if isRelayAddr(e.src) {
			return errNoPath
		}
		return b.io.write(bufs, e.src)
	}
	kind := classify(bufs[0])
	if kind == kindTransport {
		data := 0
		for _, buf := range bufs {
			if carriesPacket(buf) {
				data++
			}
		}
		defer b.tx.leave(data)
	}
	if kind == kindInitiation {
		p.initSentAt.Store(time.Now().UnixNano())
		if b.onInitiation != nil {
			b.onInitiation(p.key)
		}
	}
	if kind == kindInitiation || kind == kindResponse {
		for _, buf := range bufs {
			k := classify(buf)
			if idx, ok := senderIndex(k, buf); ok {
				b.peers.rememberIndex(p, idx)
			}
		}
	}
	if e.src.IsValid() {
		if kind == kindCookieReply {
			// A cookie reply answers the source of a handshake message; wireguard-go sends it
			// through that message's endpoint before (and without) authenticating anything.
			return b.io.write(bufs, e.src)
		}
		// wireguard-go sends through an observed endpoint only after it made it the peer's
		// endpoint, i.e. after it authenticated a packet from e.src.
		if p.path.learn(e.src, e.epoch.Load()) {
			b.log.Debug("peer path learned", "peer", p.hex[:8], "path", e.src)
		}
	}
	err := b.sendToPeer(p, bufs)
	if kind == kindInitiation {
		b.initiationSent(p, err == nil)
	}
	return err
}

// sendToPeer sends by the peer's route: the relay, its path, or else every published address.
func (b *bind) sendToPeer(p *peerState, bufs [][]byte) error {
	relay, cur, candidates := p.path.route()
	if relay != nil {
		for _, buf := range bufs {
			if err := relay.send(buf); err != nil {
				return fmt.Errorf("mesh: send by relay: %w", err)
			}
		}
		return nil
	}
	if cur.IsValid() {
		return b.io.write(bufs, cur)
	}
	if len(candidates) == 0 {
		return errNoPath
	}
	// No confirmed path: try every published address; the first to answer wins (learn above).
	var firstErr error
	sent := false
	for _, dst := range candidates {
		if err := b.io.write(bufs, dst); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		sent = true
	}
	if sent {
		return nil
	}
	return firstErr
}

// upsertPeer registers a peer (or updates its published addresses). It reports whether the
// peer's current path was dropped because it is no longer published.
func (b *bind) upsertPeer(pub key.Key, candidates []netip.AddrPort) (p *peerState, created, reset bool) {
	p, created = b.peers.upsert(pub)
	reset = p.path.setCandidates(candidates)
	return p, created, reset
}

func (b *bind) removePeer(pub key.Key) { b.peers.remove(pub) }

func (b *bind) peer(pub key.Key) *peerState { return b.peers.get(pub) }
