package mesh

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/curve25519"
	"golang.zx2c4.com/wireguard/device"
)

// DefaultMTU is the tunnel MTU when Config.MTU is zero: 1500 minus the IPv6, UDP and WireGuard
// overheads.
const DefaultMTU = 1420

const socketBufferSize = 7 << 20

// ErrUnknownPeer is returned by SetPeerPath for a key that is not among the peers.
var ErrUnknownPeer = errors.New("mesh: unknown peer")

var errNotWireGuard = errors.New("mesh: inject packet: not a WireGuard message")

// Config configures a Mesh.
type Config struct {
	PrivateKey [32]byte       // WireGuard (Curve25519) private key
	Addresses  []netip.Addr   // the node's tunnel addresses (IPv4 and/or IPv6)
	ListenAddr netip.AddrPort // UDP socket to bind; zero = [::]:0 (dual-stack), random port
	MTU        int            // tunnel MTU; 0 = DefaultMTU
	Logger     *slog.Logger   // nil = discard

	// OnPacket receives every datagram arriving on the socket that is not a WireGuard message
	// (STUN, TURN, ICE checks, ...). It is called on the receive path: it must not block, and b
	// is only valid during the call (copy it to keep it).
	OnPacket func(b []byte, from netip.AddrPort)
}

// Peer is the desired configuration of one peer.
type Peer struct {
	PublicKey  [32]byte
	AllowedIPs []netip.Prefix   // tunnel addresses (and routed prefixes) reachable through the peer
	Endpoints  []netip.AddrPort // addresses the peer published; tried all at once until one answers
	Keepalive  time.Duration    // persistent keepalive; 0 = off (rounded up to whole seconds)
}

// PeerStatus is the observed state of one peer.
type PeerStatus struct {
	PublicKey     [32]byte
	Endpoint      netip.AddrPort // current path; invalid while none is confirmed
	Pinned        bool           // Endpoint was set by SetPeerPath
	Relayed       bool           // the path is a relay route (SetPeerRelay); Endpoint is then invalid
	PathSince     time.Time      // when Endpoint became the path
	Endpoints     []netip.AddrPort
	AllowedIPs    []netip.Prefix
	LastHandshake time.Time
	RxBytes       uint64
	TxBytes       uint64
}

// Mesh is one node of a WireGuard mesh running inside the process: a wireguard-go device whose
// tunnel is a gVisor netstack, on one UDP socket. Its methods are safe for concurrent use.
type Mesh struct {
	log    *slog.Logger
	addrs  []netip.Addr
	pub    [32]byte
	sock   *net.UDPConn
	bind   *bind
	dev    *device.Device
	tnet   *netTUN
	closed atomic.Bool

	mu      sync.Mutex // serializes SetPeers and Close
	applied map[[32]byte]Peer

	retryMu      sync.Mutex
	retries      map[[32]byte]*handshakeRetry // see retry.go
	earlyRetries atomic.Int64                 // initiations retryHandshake sent (tests)
}

// GeneratePrivateKey returns a new random WireGuard private key.
func GeneratePrivateKey() ([32]byte, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("mesh: generate key: %w", err)
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k, nil
}

// PublicKey returns the public key of a WireGuard private key.
func PublicKey(private [32]byte) [32]byte {
	var pub [32]byte
	p, err := curve25519.X25519(private[:], curve25519.Basepoint)
	if err == nil {
		copy(pub[:], p)
	}
	return pub
}

// New starts a Mesh: it binds the UDP socket, creates the netstack and the WireGuard device and
// brings it up, with no peers.
func New(ctx context.Context, cfg Config) (*Mesh, error) {
	if cfg.PrivateKey == ([32]byte{}) {
		return nil, errors.New("mesh: config: PrivateKey is zero")
	}
	if len(cfg.Addresses) == 0 {
		return nil, errors.New("mesh: config: no Addresses")
	}
	addrs := make([]netip.Addr, 0, len(cfg.Addresses))
	for _, a := range cfg.Addresses {
		if !a.IsValid() || a.Zone() != "" {
			return nil, fmt.Errorf("mesh: config: invalid address %v", a)
		}
		a = a.Unmap()
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	if mtu < 1280 || mtu > 65535 {
		return nil, fmt.Errorf("mesh: config: MTU %d out of range [1280, 65535]", mtu)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mesh: new: %w", err)
	}

	ident, err := newInitiatorIdentifier(cfg.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("mesh: private key: %w", err)
	}

	laddr := "[::]:0"
	if cfg.ListenAddr.IsValid() {
		laddr = cfg.ListenAddr.String()
	} else if cfg.ListenAddr.Port() != 0 {
		laddr = fmt.Sprintf("[::]:%d", cfg.ListenAddr.Port())
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("mesh: listen udp %s: %w", laddr, err)
	}
	sock := pc.(*net.UDPConn)
	// Large socket buffers, as wireguard-go's own bind uses: bursts of a bulk transfer otherwise
	// overflow the kernel's default receive buffer and TCP in the tunnel sees loss. Best effort:
	// the kernel caps them at net.core.[rw]mem_max.
	_ = sock.SetReadBuffer(socketBufferSize)
	_ = sock.SetWriteBuffer(socketBufferSize)

	m := &Mesh{
		log:     log,
		addrs:   addrs,
		pub:     PublicKey(cfg.PrivateKey),
		sock:    sock,
		applied: make(map[[32]byte]Peer),
		retries: make(map[[32]byte]*handshakeRetry),
	}
	m.bind = newBind(newPacketIO(sock), ident, m.pub, cfg.OnPacket, log)
	m.bind.onInitiation, m.bind.onAnswer = m.initiationSent, m.initiationAnswered
	m.bind.tx, m.bind.rx = newQueueGate(gateLimit), newQueueGate(gateLimit)

	tnet, err := newNetTUN(addrs, mtu, m.bind.tx, m.bind.rx)
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("mesh: create netstack: %w", err)
	}
	m.tnet = tnet
	m.dev = device.NewDevice(tnet, m.bind, newDeviceLogger(log))
	if err := m.dev.IpcSet("private_key=" + hexKey(cfg.PrivateKey) + "\n"); err != nil {
		m.dev.Close()
		sock.Close()
		return nil, fmt.Errorf("mesh: configure device: %w", err)
	}
	if err := m.dev.Up(); err != nil {
		m.dev.Close()
		sock.Close()
		return nil, fmt.Errorf("mesh: device up: %w", err)
	}
	log.Debug("mesh up", "addresses", addrs, "listen", m.LocalAddr(), "batch", m.bind.BatchSize())
	return m, nil
}

// PublicKey returns the node's WireGuard public key.
func (m *Mesh) PublicKey() [32]byte { return m.pub }

// Addresses returns the node's tunnel addresses.
func (m *Mesh) Addresses() []netip.Addr { return slices.Clone(m.addrs) }

// LocalAddr returns the address the UDP socket is bound to.
func (m *Mesh) LocalAddr() netip.AddrPort { return localAddrPort(m.sock) }

func (m *Mesh) errClosed(op string) error {
	return fmt.Errorf("mesh: %s: %w", op, net.ErrClosed)
}

// SetPeers makes peers the full set of peers: peers not in the list are removed, new ones are
// added (and a handshake with them started right away), changed ones are updated. Changing only
// a peer's Endpoints does not touch the WireGuard device. Calling it again with the same list
// does nothing.
func (m *Mesh) SetPeers(ctx context.Context, peers []Peer) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mesh: set peers: %w", err)
	}
	want := make(map[[32]byte]Peer, len(peers))
	for _, p := range peers {
		if p.PublicKey == ([32]byte{}) {
			return errors.New("mesh: set peers: zero public key")
		}
		if p.PublicKey == m.pub {
			return errors.New("mesh: set peers: a peer has this node's own public key")
		}
		if _, dup := want[p.PublicKey]; dup {
			return fmt.Errorf("mesh: set peers: duplicate peer %s", hexKey(p.PublicKey)[:8])
		}
		if p.Keepalive < 0 || p.Keepalive > 65535*time.Second {
			return fmt.Errorf("mesh: set peers: keepalive %v out of range", p.Keepalive)
		}
		want[p.PublicKey] = normalizePeer(p)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() {
		return m.errClosed("set peers")
	}

	var uapi strings.Builder
	var removed, added, reset [][32]byte
	for key := range m.applied {
		if _, ok := want[key]; !ok {
			writePeerRemove(&uapi, key)
			removed = append(removed, key)
		}
	}
	for key, p := range want {
		old, exists := m.applied[key]
		_, created, pathReset := m.bind.upsertPeer(key, p.Endpoints)
		switch {
		case !exists || created:
			writePeerAdd(&uapi, p)
			added = append(added, key)
		default:
			writePeerUpdate(&uapi, old, p)
			if pathReset {
				reset = append(reset, key)
			}
		}
	}
	if uapi.Len() > 0 {
		if err := m.dev.IpcSet(uapi.String()); err != nil {
			// Leave the Bind consistent with what we believe is applied: drop Bind state of
			// peers that did not exist before.
			for key := range want {
				if _, ok := m.applied[key]; !ok {
					m.bind.removePeer(key)
				}
			}
			return fmt.Errorf("mesh: set peers: configure device: %w", err)
		}
	}
	m.stopRetries(removed...)
	for _, key := range removed {
		m.bind.removePeer(key)
		delete(m.applied, key)
		m.log.Debug("peer removed", "peer", hexKey(key)[:8])
	}
	for key, p := range want {
		m.applied[key] = p
	}
	// First packet: if the new peer's initiation arrived before we knew it, replay it now, so
	// the peer does not wait for wireguard-go's 5 s retry. Otherwise start the handshake right
	// away rather than on the first packet — from one side only (the smaller key), since
	// handshakes started by both sides at once cross (see bind.holdCrossingInitiation).
	for _, key := range added {
		if m.bind.activate(key) {
			m.log.Debug("peer added, replaying its initiation", "peer", hexKey(key)[:8])
			continue
		}
		m.kick(key, false)
	}
	// A peer that no longer publishes the address we talk to has most likely restarted or
	// moved: a session we still hold would only send packets it cannot decrypt. Start afresh
	// (again from one side only; the peer does the same if it is the preferred initiator).
	for _, key := range reset {
		m.kick(key, true)
	}
	return nil
}

// kick starts a handshake with the peer if this node is its preferred initiator. With expire,
// the current session is abandoned first (otherwise a live session would carry the keepalive and
// no handshake would happen).
func (m *Mesh) kick(key [32]byte, expire bool) {
	wp := m.dev.LookupPeer(device.NoisePublicKey(key))
	if wp == nil {
		return
	}
	if expire {
		// Both sides drop the stale session, so that the next packet starts a handshake
		// instead of going out under keys the restarted peer no longer has.
		wp.ExpireCurrentKeypairs()
	}
	if m.bind.preferredInitiator(key) {
		m.stopRetries(key) // a fresh start: the early retries count from this initiation
		wp.SendKeepalive() // without a session: queues a keepalive and sends an initiation
		m.log.Debug("peer handshake started", "peer", hexKey(key)[:8])
	}
}

// SetPeerPath pins the peer's path to addr: WireGuard packets to the peer go there until the
// peer roams (wireguard-go authenticates a packet from another address) or SetPeerPath is called
// again. An invalid addr removes the pin: packets go to all the peer's published endpoints
// again until one answers. wireguard-go is not involved; the current session continues.
func (m *Mesh) SetPeerPath(pub [32]byte, addr netip.AddrPort) error {
	if m.closed.Load() {
		return m.errClosed("set peer path")
	}
	p := m.bind.peer(pub)
	if p == nil {
		return fmt.Errorf("mesh: set peer path %s: %w", hexKey(pub)[:8], ErrUnknownPeer)
	}
	addr = unmapAddrPort(addr)
	p.path.pin(addr)
	m.log.Debug("peer path pinned", "peer", p.hexKey[:8], "path", addr)
	if addr.IsValid() && m.bind.preferredInitiator(pub) && !m.hasSession(pub) {
		// NAT traversal found the path only now: the handshakes so far went to addresses the
		// peer's NAT dropped. Start one on the new path at once instead of at wireguard-go's
		// next retry, up to 5 s later. There is no session to lose.
		m.kick(pub, true)
	}
	return nil
}

// SetPeerRelay routes the peer's WireGuard packets through send instead of the UDP socket,
// until SetPeerPath (any address) or SetPeerRelay(pub, nil) takes the peer back to the socket.
// SetPeerRelay(pub, nil) leaves the peer with no path: packets go to all its published
// endpoints again until one answers, as after SetPeerPath with no address.
//
// send is called with one WireGuard message at a time, possibly from several goroutines at
// once; it must not block for long and must not keep b after it returns. Packets of the peer
// that arrive by the relay are handed over with InjectPacket. Packets of the peer that arrive
// on the socket while it is relayed are still accepted, but do not move its path. wireguard-go
// is not involved; the current session continues.
func (m *Mesh) SetPeerRelay(pub [32]byte, send func(b []byte) error) error {
	if m.closed.Load() {
		return m.errClosed("set peer relay")
	}
	p := m.bind.peer(pub)
	if p == nil {
		return fmt.Errorf("mesh: set peer relay %s: %w", hexKey(pub)[:8], ErrUnknownPeer)
	}
	p.path.setRelay(send)
	m.log.Debug("peer path relayed", "peer", p.hexKey[:8], "relayed", send != nil)
	if send != nil && m.bind.preferredInitiator(pub) && !m.hasSession(pub) {
		// The handshakes so far went where the peer could not be reached (that is why it is
		// relayed): start one through the relay now rather than at wireguard-go's next retry,
		// up to 5 s later. There is no session to lose.
		m.kick(pub, true)
	}
	return nil
}

// hasSession reports whether wireguard-go completed a handshake with the peer recently enough
// for its session to be usable (RejectAfterTime, 180 s).
func (m *Mesh) hasSession(pub [32]byte) bool {
	s, err := m.dev.IpcGet()
	if err != nil {
		return false
	}
	hs := parseDeviceCounters(s)[pub].lastHandshake
	return !hs.IsZero() && time.Since(hs) < 180*time.Second
}

// InjectPacket hands a datagram that arrived for this node by another route (a TURN relay) to
// the Bind as if it came from the peer; it is demultiplexed like socket traffic. The Bind
// checks that a WireGuard message really belongs to pub (by its receiver index, or the
// initiator's key) and drops it otherwise; wireguard-go then authenticates it as always.
// Datagrams that are not WireGuard messages are refused. InjectPacket copies b and never
// blocks: when the queue towards wireguard-go is full, the datagram is dropped (as the network
// would). An initiation from a key that is not a peer yet is kept briefly, as on the socket.
func (m *Mesh) InjectPacket(pub [32]byte, b []byte) error {
	if m.closed.Load() {
		return m.errClosed("inject packet")
	}
	if classify(b) == kindOther {
		return errNotWireGuard
	}
	m.bind.injectRelayed(pub, bytes.Clone(b))
	return nil
}

// WriteTo sends one raw datagram from the mesh's UDP socket (for STUN and ICE).
func (m *Mesh) WriteTo(b []byte, to netip.AddrPort) error {
	if m.closed.Load() {
		return m.errClosed("write")
	}
	if err := m.bind.io.write([][]byte{b}, unmapAddrPort(to)); err != nil {
		return fmt.Errorf("mesh: write to %v: %w", to, err)
	}
	return nil
}

// Peers returns the state of every configured peer.
func (m *Mesh) Peers() []PeerStatus {
	if m.closed.Load() {
		return nil
	}
	m.mu.Lock()
	applied := make(map[[32]byte]Peer, len(m.applied))
	for k, v := range m.applied {
		applied[k] = v
	}
	m.mu.Unlock()

	counters := map[[32]byte]deviceCounters{}
	if s, err := m.dev.IpcGet(); err == nil {
		counters = parseDeviceCounters(s)
	}
	out := make([]PeerStatus, 0, len(applied))
	for key, p := range applied {
		st := PeerStatus{
			PublicKey:  key,
			Endpoints:  slices.Clone(p.Endpoints),
			AllowedIPs: slices.Clone(p.AllowedIPs),
		}
		if bp := m.bind.peer(key); bp != nil {
			st.Endpoint, st.Pinned, st.Relayed, st.PathSince = bp.path.status()
		}
		if c, ok := counters[key]; ok {
			st.LastHandshake, st.RxBytes, st.TxBytes = c.lastHandshake, c.rx, c.tx
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return strings.Compare(hexKey(a.PublicKey), hexKey(b.PublicKey)) })
	return out
}

// Close shuts the mesh down: the WireGuard device, the netstack (and with it every connection and
// listener made by the mesh) and the UDP socket. A second call returns an error wrapping
// net.ErrClosed.
func (m *Mesh) Close() error {
	if m.closed.Swap(true) {
		return m.errClosed("close")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopAllRetries()
	m.dev.Close() // closes the netstack and the bind, and waits for the device's goroutines
	if err := m.sock.Close(); err != nil {
		return fmt.Errorf("mesh: close socket: %w", err)
	}
	m.log.Debug("mesh closed")
	return nil
}

func normalizePeer(p Peer) Peer {
	q := Peer{PublicKey: p.PublicKey, Keepalive: p.Keepalive}
	for _, e := range p.Endpoints {
		e = unmapAddrPort(e)
		if e.IsValid() && e.Port() != 0 && !slices.Contains(q.Endpoints, e) {
			q.Endpoints = append(q.Endpoints, e)
		}
	}
	slices.SortFunc(q.Endpoints, func(a, b netip.AddrPort) int { return a.Compare(b) })
	for _, pr := range p.AllowedIPs {
		if !pr.IsValid() {
			continue
		}
		pr = pr.Masked()
		if !slices.Contains(q.AllowedIPs, pr) {
			q.AllowedIPs = append(q.AllowedIPs, pr)
		}
	}
	slices.SortFunc(q.AllowedIPs, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return q
}
