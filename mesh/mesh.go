package mesh

// This file holds the Mesh: its configuration, New, the peer set and the peers' paths, their
// status, and Close. Dialing and listening are in netconn.go, the early handshake retries in
// retry.go, the Bind that moves the packets in bind.go.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexodus-sdk/nexodus/internal/sockbuf"
	"github.com/nexodus-sdk/nexodus/key"
	"golang.zx2c4.com/wireguard/device"
)

// DefaultMTU is the tunnel MTU when Config.MTU is zero: 1500 minus the IPv6, UDP and WireGuard
// overheads.
const DefaultMTU = 1420

// socketBufferSize is the receive and send buffer of the Mesh's socket, as wireguard-go's own
// bind has it: bursts of a bulk transfer otherwise overflow the kernel's default receive buffer
// and TCP in the tunnel sees loss.
const socketBufferSize = 7 << 20

// ErrUnknownPeer is returned by SetPeerPath for a key that is not among the peers.
var ErrUnknownPeer = errors.New("mesh: unknown peer")

var errNotWireGuard = errors.New("mesh: inject packet: not a WireGuard message")

// Config configures a Mesh.
type Config struct {
	PrivateKey key.Key        // WireGuard (Curve25519) private key
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
	PublicKey  key.Key
	AllowedIPs []netip.Prefix   // tunnel addresses (and routed prefixes) reachable through the peer
	Endpoints  []netip.AddrPort // addresses the peer published; tried all at once until one answers
	Keepalive  time.Duration    // persistent keepalive; 0 = off (rounded up to whole seconds)
}

// PeerStatus is the observed state of one peer.
type PeerStatus struct {
	PublicKey     key.Key
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
	pub    key.Key
	sock   *net.UDPConn
	bind   *bind
	dev    *device.Device
	tnet   *netTUN
	closed atomic.Bool

	mu      sync.Mutex // serializes SetPeers, Close and the early handshake retries
	applied map[key.Key]Peer

	retries      *handshakeRetrier // see retry.go
	earlyRetries atomic.Int64      // initiations retryHandshake sent (tests)
}

// New starts a Mesh: it binds the UDP socket, creates the netstack and the WireGuard device and
// brings it up, with no peers.
func New(ctx context.Context, cfg Config) (*Mesh, error) {
	if cfg.PrivateKey.IsZero() {
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
	sock, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("mesh: listen udp %s: got a %T", laddr, pc)
	}
	sockbuf.Grow(sock, socketBufferSize)

	m := &Mesh{
		log:     log,
		addrs:   addrs,
		pub:     cfg.PrivateKey.Public(),
		sock:    sock,
		applied: make(map[key.Key]Peer),
	}
	m.retries = newHandshakeRetrier(handshakeRetries, &m.mu, m.retryHandshake)
	m.bind = newBind(newPacketIO(sock), newInitiatorIdentifier(cfg.PrivateKey), m.pub, cfg.OnPacket, log)
	m.bind.onInitiation, m.bind.onAnswer = m.retries.sent, m.retries.answered
	m.bind.tx, m.bind.rx = newQueueGate(gateLimit), newQueueGate(gateLimit)

	tnet, err := newNetTUN(addrs, mtu, m.bind.tx, m.bind.rx)
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("mesh: create netstack: %w", err)
	}
	m.tnet = tnet
	m.dev = device.NewDevice(tnet, m.bind, newDeviceLogger(log))
	err = m.dev.IpcSet("private_key=" + cfg.PrivateKey.Hex() + "\n")
	if err != nil {
		err = fmt.Errorf("mesh: configure device: %w", err)
	} else if err = m.dev.Up(); err != nil {
		err = fmt.Errorf("mesh: device up: %w", err)
	}
	if err != nil {
		m.dev.Close()
		sock.Close()
		return nil, err
	}
	log.Debug("mesh up", "addresses", addrs, "listen", m.LocalAddr(), "batch", m.bind.BatchSize())
	return m, nil
}

// PublicKey returns the node's WireGuard public key.
func (m *Mesh) PublicKey() key.Key { return m.pub }

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
	want := make(map[key.Key]Peer, len(peers))
	for _, p := range peers {
		if p.PublicKey.IsZero() {
			return errors.New("mesh: set peers: zero public key")
		}
		if p.PublicKey == m.pub {
			return errors.New("mesh: set peers: a peer has this node's own public key")
		}
		if _, dup := want[p.PublicKey]; dup {
			return fmt.Errorf("mesh: set peers: duplicate peer %s", p.PublicKey.Hex()[:8])
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
	var removed, added, reset []key.Key
	for pub := range m.applied {
		if _, ok := want[pub]; !ok {
			writePeerRemove(&uapi, pub)
			removed = append(removed, pub)
		}
	}
	for pub, p := range want {
		old, exists := m.applied[pub]
		_, created, pathReset := m.bind.upsertPeer(pub, p.Endpoints)
		switch {
		case !exists || created:
			writePeerAdd(&uapi, p)
			added = append(added, pub)
		default:
			writePeerUpdate(&uapi, old, p)
			if pathReset {
				reset = append(reset, pub)
			}
		}
	}
	if uapi.Len() > 0 {
		if err := m.dev.IpcSet(uapi.String()); err != nil {
			// Leave the Bind consistent with what we believe is applied: drop Bind state of
			// peers that did not exist before.
			for pub := range want {
				if _, ok := m.applied[pub]; !ok {
					m.bind.removePeer(pub)
				}
			}
			return fmt.Errorf("mesh: set peers: configure device: %w", err)
		}
	}
	m.retries.stop(removed...)
	for _, pub := range removed {
		m.bind.removePeer(pub)
		delete(m.applied, pub)
		m.log.Debug("peer removed", "peer", pub.Hex()[:8])
	}
	for pub, p := range want {
		m.applied[pub] = p
	}
	// First packet: if the new peer's initiation arrived before we knew it, replay it now, so
	// the peer does not wait for wireguard-go's 5 s retry. Otherwise start the handshake right
	// away rather than on the first packet — from one side only (the smaller key), since
	// handshakes started by both sides at once cross (see bind.holdCrossingInitiation).
	for _, pub := range added {
		if m.bind.activate(pub) {
			m.log.Debug("peer added, replaying its initiation", "peer", pub.Hex()[:8])
			continue
		}
		m.kick(pub, false)
	}
	// A peer that no longer publishes the address we talk to has most likely restarted or
	// moved: a session we still hold would only send packets it cannot decrypt. Start afresh
	// (again from one side only; the peer does the same if it is the preferred initiator).
	for _, pub := range reset {
		m.kick(pub, true)
	}
	return nil
}

// kick starts a handshake with the peer if this node is its preferred initiator. With expire,
// the current session is abandoned first (otherwise a live session would carry the keepalive and
// no handshake would happen).
func (m *Mesh) kick(pub key.Key, expire bool) {
	wp := m.dev.LookupPeer(device.NoisePublicKey(pub))
	if wp == nil {
		return
	}
	if expire {
		// Both sides drop the stale session, so that the next packet starts a handshake
		// instead of going out under keys the restarted peer no longer has.
		wp.ExpireCurrentKeypairs()
	}
	if m.bind.preferredInitiator(pub) {
		m.retries.stop(pub) // a fresh start: the early retries count from this initiation
		wp.SendKeepalive()  // without a session: queues a keepalive and sends an initiation
		m.log.Debug("peer handshake started", "peer", pub.Hex()[:8])
	}
}

// SetPeerPath pins the peer's path to addr: WireGuard packets to the peer go there until the
// peer roams (wireguard-go authenticates a packet from another address) or SetPeerPath is called
// again. An invalid addr removes the pin: packets go to all the peer's published endpoints
// again until one answers. wireguard-go is not involved; the current session continues.
func (m *Mesh) SetPeerPath(pub key.Key, addr netip.AddrPort) error {
	if m.closed.Load() {
		return m.errClosed("set peer path")
	}
	p := m.bind.peer(pub)
	if p == nil {
		return fmt.Errorf("mesh: set peer path %s: %w", pub.Hex()[:8], ErrUnknownPeer)
	}
	addr = unmapAddrPort(addr)
	p.path.pin(addr)
	m.log.Debug("peer path pinned", "peer", p.hex[:8], "path", addr)
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
func (m *Mesh) SetPeerRelay(pub key.Key, send func(b []byte) error) error {
	if m.closed.Load() {
		return m.errClosed("set peer relay")
	}
	p := m.bind.peer(pub)
	if p == nil {
		return fmt.Errorf("mesh: set peer relay %s: %w", pub.Hex()[:8], ErrUnknownPeer)
	}
	p.path.setRelay(send)
	m.log.Debug("peer path relayed", "peer", p.hex[:8], "relayed", send != nil)
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
func (m *Mesh) hasSession(pub key.Key) bool {
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
func (m *Mesh) InjectPacket(pub key.Key, b []byte) error {
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
	applied := maps.Clone(m.applied)
	m.mu.Unlock()

	counters := map[key.Key]deviceCounters{}
	if s, err := m.dev.IpcGet(); err == nil {
		counters = parseDeviceCounters(s)
	}
	out := make([]PeerStatus, 0, len(applied))
	for pub, p := range applied {
		st := PeerStatus{
			PublicKey:  pub,
			Endpoints:  slices.Clone(p.Endpoints),
			AllowedIPs: slices.Clone(p.AllowedIPs),
		}
		if bp := m.bind.peer(pub); bp != nil {
			st.Endpoint, st.Pinned, st.Relayed, st.PathSince = bp.path.status()
		}
		if c, ok := counters[pub]; ok {
			st.LastHandshake, st.RxBytes, st.TxBytes = c.lastHandshake, c.rx, c.tx
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return bytes.Compare(a.PublicKey[:], b.PublicKey[:]) })
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
	m.retries.close()
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
