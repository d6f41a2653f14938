package mesh

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// Bounds of the Bind's caches. They only limit memory under a flood of packets from many
// source addresses; a normal mesh stays far below them.
const (
	maxPlainEndpoints  = 1024 // endpoints for packets that belong to no known peer
	maxObservedPerPeer = 16   // per peer: source addresses seen but not (yet) its path
	indicesPerPeer     = 32   // per peer: our handshake indices remembered (>= 18 retries + 3 keypairs)
	maxHeldInitiations = 64   // initiations from keys that are not (yet) peers, kept for replay
	injectQueue        = 512  // datagrams waiting for the injection ReceiveFunc (relayed traffic)

	// heldInitiationTTL is how long an initiation from a not-yet-known key is kept for replay:
	// wireguard-go's REKEY_TIMEOUT, after which the initiator sends a fresh one anyway.
	heldInitiationTTL = 5 * time.Second
	// crossingWindow and crossingHold shape the tie-break for crossing handshakes (see
	// bind.holdCrossingInitiation).
	crossingWindow = time.Second
	crossingHold   = 250 * time.Millisecond
)

var errNoPath = errors.New("mesh: peer has no endpoint to send to")

// relayPrefix is where the source addresses of relayed packets come from: the IPv6 discard-only
// prefix 100::/64 (RFC 6666), which no packet on the socket can come from. A packet handed over
// by InjectPacket gets the source relayAddr(peer key), with port 0, so that every step of the
// receive path (holding initiations, replaying them) knows it came by relay and from whom.
var relayPrefix = [8]byte{0x01, 0x00}

// relayAddr is the pseudo source address of packets of the peer with this key that arrived by
// relay.
func relayAddr(key [32]byte) netip.AddrPort {
	var a [16]byte
	copy(a[:8], relayPrefix[:])
	copy(a[8:], key[:8])
	return netip.AddrPortFrom(netip.AddrFrom16(a), 0)
}

// isRelayAddr reports whether src is a relayAddr.
func isRelayAddr(src netip.AddrPort) bool {
	if src.Port() != 0 || !src.Addr().Is6() || src.Addr().Is4In6() {
		return false
	}
	a := src.Addr().As16()
	return [8]byte(a[:8]) == relayPrefix
}

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
	pub      [32]byte // our public key

	gen    atomic.Uint64 // bumped by Open and Close; a ReceiveFunc of an older generation returns net.ErrClosed
	open   atomic.Bool
	doneMu sync.Mutex
	done   chan struct{} // closed by Close: stops the injection ReceiveFunc
	inject chan injected // datagrams handed to wireguard-go as if read from the socket

	heldMu sync.Mutex
	held   map[[32]byte]heldInitiation

	// tx counts packets from the tunnel until they leave by Send, rx packets from the socket
	// until the tunnel's Write; nil gates count nothing (see queueGate).
	tx, rx *queueGate

	// onInitiation and onAnswer, if set, learn that an initiation to a peer went out and that
	// the peer answered one (the Mesh's early handshake retries, retry.go). They must not
	// block.
	onInitiation, onAnswer func(key [32]byte)

	mu      sync.RWMutex
	peers   map[[32]byte]*peerState
	byIndex map[uint32]*peerState

	plainMu sync.Mutex
	plain   map[netip.AddrPort]*endpoint
}

// peerState is the Bind's view of one peer.
type peerState struct {
	key    [32]byte
	hexKey string
	ep     *endpoint // the key endpoint: what wireguard-go is configured with
	path   pathSelector

	// indices is a ring of the handshake indices this node allocated for the peer (guarded by
	// bind.mu).
	indices [indicesPerPeer]uint32
	nidx    int

	obsMu    sync.Mutex
	observed map[netip.AddrPort]*endpoint

	// active is set once wireguard-go runs the peer (after the UAPI call that adds it). Until
	// then its initiations are held for replay, as for unknown keys. Guarded by bind.heldMu.
	active bool

	initSentAt atomic.Int64 // unix ns of our last initiation to the peer; 0 once answered
	crossHeld  atomic.Bool  // an initiation of the peer is held by the crossing tie-break
}

// injected is a datagram fed to wireguard-go through the injection ReceiveFunc.
type injected struct {
	pkt []byte
	src netip.AddrPort
	// fresh: the datagram has not been through the Bind's demultiplexer yet (a relayed one),
	// as opposed to a replayed initiation, which the crossing tie-break already held once.
	fresh bool
}

// heldInitiation is a handshake initiation from a key that was not a peer when it arrived.
type heldInitiation struct {
	pkt [sizeInitiation]byte
	src netip.AddrPort
	at  time.Time
}

// endpoint implements conn.Endpoint. There are three kinds:
//   - key endpoint: peer set, src invalid — sends follow the peer's path;
//   - observed endpoint: peer and src set — a packet of the peer arrived from src, which is not
//     its current path; sending through it means wireguard-go accepted that packet;
//   - plain endpoint: peer nil — a packet that belongs to no known peer.
type endpoint struct {
	peer  *peerState
	src   netip.AddrPort
	epoch atomic.Uint64 // observed endpoints: the path epoch when a packet last arrived from src
}

var _ conn.Endpoint = (*endpoint)(nil)

func (e *endpoint) dst() netip.AddrPort {
	if e.src.IsValid() {
		return e.src
	}
	if e.peer.path.relayed() {
		return relayAddr(e.peer.key)
	}
	return e.peer.path.current()
}

func (e *endpoint) ClearSrc()           {}
func (e *endpoint) SrcToString() string { return "" }
func (e *endpoint) SrcIP() netip.Addr   { return netip.Addr{} }
func (e *endpoint) DstIP() netip.Addr   { return e.dst().Addr() }

func (e *endpoint) DstToString() string {
	if e.src.IsValid() {
		return e.src.String()
	}
	return e.peer.hexKey
}

// DstToBytes is used by wireguard-go for the MAC2 cookie, which binds a cookie to the source
// address of a handshake message.
func (e *endpoint) DstToBytes() []byte {
	b, _ := e.dst().MarshalBinary()
	return b
}

func newBind(io packetIO, ident *initiatorIdentifier, pub [32]byte, onPacket func([]byte, netip.AddrPort), log *slog.Logger) *bind {
	return &bind{
		io:       io,
		log:      log,
		onPacket: onPacket,
		ident:    ident,
		pub:      pub,
		inject:   make(chan injected, injectQueue),
		held:     make(map[[32]byte]heldInitiation),
		peers:    make(map[[32]byte]*peerState),
		byIndex:  make(map[uint32]*peerState),
		plain:    make(map[netip.AddrPort]*endpoint),
	}
}

// Open implements conn.Bind. The socket is already bound; port is ignored.
func (b *bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	if !b.open.CompareAndSwap(false, true) {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	gen := b.gen.Add(1)
	if err := b.io.resume(); err != nil {
		b.open.Store(false)
		return nil, 0, fmt.Errorf("mesh: open bind: %w", err)
	}
	done := make(chan struct{})
	b.doneMu.Lock()
	b.done = done
	b.doneMu.Unlock()
	return []conn.ReceiveFunc{b.receiveFunc(gen, done), b.injectFunc(done)}, b.io.localAddr().Port(), nil
}

// Close implements conn.Bind: it stops the ReceiveFuncs but leaves the socket open (the Mesh
// owns it and closes it after the device).
func (b *bind) Close() error {
	if !b.open.CompareAndSwap(true, false) {
		return nil
	}
	b.gen.Add(1)
	b.doneMu.Lock()
	if b.done != nil {
		close(b.done)
		b.done = nil
	}
	b.doneMu.Unlock()
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
	if len(s) == 64 {
		var key [32]byte
		if _, err := hex.Decode(key[:], []byte(s)); err == nil {
			b.mu.RLock()
			p := b.peers[key]
			b.mu.RUnlock()
			if p == nil {
				return nil, fmt.Errorf("mesh: endpoint for unknown peer %s", s[:8])
			}
			return p.ep, nil
		}
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, fmt.Errorf("mesh: parse endpoint: %w", err)
	}
	return b.plainEndpoint(unmapAddrPort(ap)), nil
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
func (b *bind) injectRelayed(key [32]byte, pkt []byte) bool {
	return b.enqueue(injected{pkt: pkt, src: relayAddr(key), fresh: true})
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

// indexCache remembers the last receiver index looked up while demultiplexing one batch of
// datagrams read together, which mostly belong to one session: the lookup takes the Bind's read
// lock, two atomic operations per datagram otherwise. It lives for one batch only, so a peer
// removed or an index reused meanwhile is seen from the next batch on, as if the batch had been
// looked up a moment earlier.
type indexCache struct {
	idx   uint32
	p     *peerState
	valid bool
}

func (b *bind) peerByIndex(idx uint32, cache *indexCache) *peerState {
	if cache != nil && cache.valid && cache.idx == idx {
		return cache.p
	}
	b.mu.RLock()
	p := b.byIndex[idx]
	b.mu.RUnlock()
	if cache != nil {
		*cache = indexCache{idx: idx, p: p, valid: true}
	}
	return p
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
		p = b.peerByIndex(idx, cache)
		if p != nil && kind == kindResponse {
			p.initSentAt.Store(0)
			if b.onAnswer != nil {
				b.onAnswer(p.key)
			}
		}
	} else if kind == kindInitiation && b.ident != nil {
		if key, ok := b.ident.initiator(pkt); ok {
			b.mu.RLock()
			p = b.peers[key]
			b.mu.RUnlock()
			if b.holdInitiation(p, key, pkt, src) {
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
		return b.plainEndpoint(src)
	}
	if p.path.current() == src {
		return p.ep
	}
	return p.observedEndpoint(src)
}

// holdCrossingInitiation breaks the tie when both sides start a handshake at once.
// wireguard-go processes handshake messages on several goroutines: the peer's initiation
// processed at the same time as the response to our own initiation can leave the two sides with
// different sessions (traffic then stalls until a timer re-handshakes 15 s later), and our own
// initiation created while the peer's is being answered cancels the answer (a 5 s stall).
//
// So the side with the smaller public key holds the peer's initiation back while its own is
// less than crossingWindow old and unanswered. If the response to ours arrives within
// crossingHold, the held initiation is discarded: one handshake, no crossing. Otherwise (our
// initiation was lost, or the peer could not answer it) the held one is replayed and answered
// normally, crossingHold late instead of 5 s.
func (b *bind) holdCrossingInitiation(p *peerState, pkt []byte, src netip.AddrPort) bool {
	if !b.preferredInitiator(p.key) {
		return false
	}
	sent := p.initSentAt.Load()
	if sent == 0 || time.Now().UnixNano()-sent > int64(crossingWindow) {
		return false
	}
	if !p.crossHeld.CompareAndSwap(false, true) {
		return true // one is held already; the peer's retries are copies for our purpose
	}
	held := bytes.Clone(pkt)
	b.log.Debug("crossing handshake: holding peer's initiation, ours is in flight", "peer", p.hexKey[:8])
	time.AfterFunc(crossingHold, func() {
		p.crossHeld.Store(false)
		if p.initSentAt.Load() == 0 {
			return // our handshake was answered
		}
		b.log.Debug("crossing handshake: ours unanswered, replaying peer's initiation", "peer", p.hexKey[:8])
		b.injectPacket(held, src)
	})
	return true
}

// holdInitiation keeps an initiation from a key that is not an active peer (yet): if the key
// becomes a peer within heldInitiationTTL, the initiation is replayed to wireguard-go
// (activate), so the handshake completes at once instead of after the initiator's 5-second
// retry. It reports whether it held the packet; false means p is active and the packet goes on.
func (b *bind) holdInitiation(p *peerState, key [32]byte, pkt []byte, src netip.AddrPort) bool {
	b.heldMu.Lock()
	defer b.heldMu.Unlock()
	if p != nil && p.active {
		return false
	}
	now := time.Now()
	if _, ok := b.held[key]; !ok && len(b.held) >= maxHeldInitiations {
		for k, h := range b.held {
			if now.Sub(h.at) > heldInitiationTTL {
				delete(b.held, k)
			}
		}
		if len(b.held) >= maxHeldInitiations {
			return true
		}
	}
	h := heldInitiation{src: src, at: now}
	copy(h.pkt[:], pkt)
	b.held[key] = h
	return true
}

// activate marks a peer as running in wireguard-go and replays its held initiation, if there is
// a fresh one. It reports whether it replayed one; if not, the caller starts a handshake when
// this node is the preferred initiator, and activate already counts that initiation as in
// flight, so that an initiation of the peer arriving in between is treated as crossing.
func (b *bind) activate(key [32]byte) bool {
	p := b.peer(key)
	b.heldMu.Lock()
	h, ok := b.held[key]
	delete(b.held, key)
	fresh := ok && time.Since(h.at) <= heldInitiationTTL
	if p != nil {
		if !fresh && b.preferredInitiator(key) {
			p.initSentAt.Store(time.Now().UnixNano())
		}
		p.active = true
	}
	b.heldMu.Unlock()
	if !fresh {
		return false
	}
	return b.injectPacket(h.pkt[:], h.src)
}

// preferredInitiator reports whether this node starts handshakes with p on its own (when p is
// added): the side with the smaller public key does, so that both sides do not start at once.
func (b *bind) preferredInitiator(p [32]byte) bool {
	return bytes.Compare(b.pub[:], p[:]) < 0
}

func (b *bind) plainEndpoint(src netip.AddrPort) *endpoint {
	b.plainMu.Lock()
	defer b.plainMu.Unlock()
	if e := b.plain[src]; e != nil {
		return e
	}
	if len(b.plain) >= maxPlainEndpoints {
		clear(b.plain)
	}
	e := &endpoint{src: src}
	b.plain[src] = e
	return e
}

func (p *peerState) observedEndpoint(src netip.AddrPort) *endpoint {
	epoch := p.path.epoch()
	p.obsMu.Lock()
	e := p.observed[src]
	if e == nil {
		if len(p.observed) >= maxObservedPerPeer {
			clear(p.observed)
		}
		e = &endpoint{peer: p, src: src}
		p.observed[src] = e
	}
	p.obsMu.Unlock()
	e.epoch.Store(epoch)
	return e
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
				b.rememberIndex(p, idx)
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
			b.log.Debug("peer path learned", "peer", p.hexKey[:8], "path", e.src)
		}
	}
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

// rememberIndex records that idx is one of our handshake indices for peer p. Caller: Send.
func (b *bind) rememberIndex(p *peerState, idx uint32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.peers[p.key] != p {
		return // removed meanwhile
	}
	slot := p.nidx % indicesPerPeer
	if p.nidx >= indicesPerPeer {
		if old := p.indices[slot]; b.byIndex[old] == p {
			delete(b.byIndex, old)
		}
	}
	p.indices[slot] = idx
	p.nidx++
	b.byIndex[idx] = p
}

// upsertPeer registers a peer (or updates its published addresses). It reports whether the
// peer's current path was dropped because it is no longer published.
func (b *bind) upsertPeer(key [32]byte, candidates []netip.AddrPort) (p *peerState, created, reset bool) {
	b.mu.Lock()
	p = b.peers[key]
	if p == nil {
		p = &peerState{
			key:      key,
			hexKey:   hex.EncodeToString(key[:]),
			observed: make(map[netip.AddrPort]*endpoint),
		}
		p.ep = &endpoint{peer: p}
		b.peers[key] = p
		created = true
	}
	b.mu.Unlock()
	reset = p.path.setCandidates(candidates)
	return p, created, reset
}

func (b *bind) removePeer(key [32]byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[key]
	if p == nil {
		return
	}
	delete(b.peers, key)
	n := min(p.nidx, indicesPerPeer)
	for _, idx := range p.indices[:n] {
		if b.byIndex[idx] == p {
			delete(b.byIndex, idx)
		}
	}
}

func (b *bind) peer(key [32]byte) *peerState {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.peers[key]
}

func unmapAddrPort(ap netip.AddrPort) netip.AddrPort {
	if ap.Addr().Is4In6() {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ap
}
