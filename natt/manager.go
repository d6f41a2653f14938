// manager.go holds the Manager: the set of peers, each an actor (peer.go), the pion mux they
// share, and the calls that reach them.

package natt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"

	"github.com/nexodus-sdk/nexodus/key"
)

// Sentinel errors of the Manager.
var (
	// ErrUnknownPeer: a signal came from, or an operation named, a peer that was not added.
	ErrUnknownPeer = errors.New("natt: unknown peer")
	// ErrPeerExists: AddPeer for a peer ID that is already there with another key.
	ErrPeerExists = errors.New("natt: peer already added with another key")
	// ErrSignalQueueFull: a peer sends signals faster than they are processed; the message was
	// dropped.
	ErrSignalQueueFull = errors.New("natt: signal queue full")
)

// Manager runs one ICE agent per peer, all over one shared Socket through one pion UDP mux.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	view *sockView
	mux  *iceMux
	net  bufferedNet // pion's network: large buffers on its TURN sockets

	relayOnly atomic.Bool // Config.RelayOnly, then SetRelayOnly

	turnMu sync.Mutex  // guards urls and turn
	urls   []*stun.URI // STUN servers, for new sessions (see SetSTUN)
	turn   []*stun.URI // TURN servers with credentials, for new sessions

	natMu    sync.Mutex
	localNAT NATType         // this host's NAT as last reported by SetLocalNAT; NATUnknown until then
	symPeers map[string]bool // peers that reported a symmetric NAT (SetPeerSymmetric)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	peers  map[string]*peer
	closed bool
}

// New starts a Manager reading cfg.Socket.
func New(cfg Config) (*Manager, error) {
	if cfg.Socket == nil {
		return nil, errors.New("natt: Config.Socket is required")
	}
	if cfg.Signal == nil {
		return nil, errors.New("natt: Config.Signal is required")
	}
	cfg.setDefaults()
	urls, err := parseSTUN(cfg.STUNServers)
	if err != nil {
		return nil, err
	}
	turn, err := parseTURN(cfg.TURN)
	if err != nil {
		return nil, err
	}
	if cfg.RelayOnly && len(turn) == 0 {
		return nil, errors.New("natt: Config.RelayOnly needs TURN servers")
	}
	pnet, err := newBufferedNet()
	if err != nil {
		return nil, err
	}
	log := loggerOrDiscard(cfg.Logger).With("component", "natt")
	view := newSockView(cfg.Socket)
	mux := &iceMux{
		UniversalUDPMuxDefault: ice.NewUniversalUDPMuxDefault(ice.UniversalUDPMuxParams{
			Logger:                pionLoggerFactory{log}.NewLogger("udpmux"),
			UDPConn:               view,
			XORMappedAddrCacheTTL: 5 * time.Second,
		}),
		local: cfg.Socket.LocalAddrPort(),
		filter: hostFilter{
			includeLoopback: cfg.IncludeLoopback,
			ipv6:            cfg.IPv6,
			iface:           cfg.InterfaceFilter,
			ip:              cfg.IPFilter,
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		net:      pnet,
		cfg:      cfg,
		log:      log,
		view:     view,
		mux:      mux,
		urls:     urls,
		turn:     turn,
		symPeers: map[string]bool{},
		ctx:      ctx,
		cancel:   cancel,
		peers:    make(map[string]*peer),
	}
	m.relayOnly.Store(cfg.RelayOnly)
	return m, nil
}

// AddPeer starts ICE with a peer: this side offers at once (the other side, if it offers too,
// is reconciled by key order). Adding a peer that is already there with the same key does
// nothing.
func (m *Manager) AddPeer(peerID string, peerKey key.Key) error {
	if peerID == "" {
		return errors.New("natt: AddPeer: empty peer ID")
	}
	if peerKey.Equal(m.cfg.LocalKey) {
		return errors.New("natt: AddPeer: peer has our own key")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed("manager")
	}
	if p, ok := m.peers[peerID]; ok {
		if p.key.Equal(peerKey) {
			return nil
		}
		return fmt.Errorf("%w: %q", ErrPeerExists, peerID)
	}
	p := newPeer(m, peerID, peerKey)
	m.peers[peerID] = p
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		p.run()
	}()
	return nil
}

// RemovePeer stops ICE with a peer and tells it so (a "restart" signal for the current
// session). It does not wait for the peer's goroutines; Close does.
func (m *Manager) RemovePeer(peerID string) {
	m.mu.Lock()
	p, ok := m.peers[peerID]
	delete(m.peers, peerID)
	m.mu.Unlock()
	m.natMu.Lock()
	delete(m.symPeers, peerID)
	m.natMu.Unlock()
	if ok {
		p.cancel()
	}
}

// HandleSignal processes a signaling payload that peer fromPeerID sent us. Malformed payloads
// are rejected with an error wrapping ErrBadSignal or ErrSignalVersion; signals from peers that
// were not added, with ErrUnknownPeer. Processing is asynchronous: a nil error means accepted.
func (m *Manager) HandleSignal(fromPeerID string, payload []byte) error {
	msg, err := DecodeSignal(payload)
	if err != nil {
		return fmt.Errorf("%w (from peer %q)", err, fromPeerID)
	}
	p, err := m.peer(fromPeerID)
	if err != nil {
		return err
	}
	select {
	case p.inbox <- msg:
		return nil
	default:
		return fmt.Errorf("%w: signal from %q dropped", ErrSignalQueueFull, fromPeerID)
	}
}

// peer returns the peer peerID, or why there is none.
func (m *Manager) peer(peerID string) (*peer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed("manager")
	}
	p, ok := m.peers[peerID]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownPeer, peerID)
	}
	return p, nil
}

// eachPeer calls f for every peer, with the peer set locked (f must not block).
func (m *Manager) eachPeer(f func(*peer)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.peers {
		f(p)
	}
}

// RestartAll starts a new ICE session with every peer now, without backoff: call it when the
// network changed (a Monitor reported a new NAT mapping, or the host's addresses changed), so
// that fresh candidates are gathered and exchanged. Working paths stay in use until the new
// sessions select theirs.
func (m *Manager) RestartAll() { m.eachPeer((*peer).restartNow) }

// SetRelayOnly switches new sessions to relayed candidates only (on) or back to every kind, and
// restarts every peer's session so the switch takes effect now: a path in use stays until its
// successor has a pair. Switching on needs TURN servers.
func (m *Manager) SetRelayOnly(on bool) error {
	if on {
		m.turnMu.Lock()
		n := len(m.turn)
		m.turnMu.Unlock()
		if n == 0 {
			return errors.New("natt: SetRelayOnly: no TURN servers")
		}
	}
	if m.relayOnly.Swap(on) != on {
		m.RestartAll()
	}
	return nil
}

// Restart starts a new ICE session with one peer now, without backoff (for example when the
// coordinator reports that the peer's endpoints changed).
func (m *Manager) Restart(peerID string) error {
	p, err := m.peer(peerID)
	if err != nil {
		return err
	}
	p.restartNow()
	return nil
}

// SetSTUN replaces the STUN servers ("host:port") that new sessions gather server-reflexive
// candidates from (for example when the organization's servers changed). Working paths are
// not disturbed.
func (m *Manager) SetSTUN(servers []string) error {
	urls, err := parseSTUN(servers)
	if err != nil {
		return err
	}
	m.turnMu.Lock()
	m.urls = urls
	m.turnMu.Unlock()
	return nil
}

// SetTURN replaces the TURN servers (for example when their credentials are refreshed). New
// sessions use them; peers that are relayed at the moment start a new session at once, so
// that their allocation is made with the fresh credentials before the old ones expire — their
// relayed path stays in use until the new session selects a pair. With RelayOnly, an empty
// list is refused.
func (m *Manager) SetTURN(servers []TURNServer) error {
	turn, err := parseTURN(servers)
	if err != nil {
		return err
	}
	if m.relayOnly.Load() && len(turn) == 0 {
		return errors.New("natt: SetTURN: RelayOnly needs TURN servers")
	}
	m.turnMu.Lock()
	m.turn = turn
	m.turnMu.Unlock()
	m.eachPeer(func(p *peer) {
		if p.statusSnapshot().Path.Relayed() {
			p.restartNow()
		} else {
			p.reconsider() // relays may have appeared or gone
		}
	})
	return nil
}

func (m *Manager) stunURLs() []*stun.URI {
	m.turnMu.Lock()
	defer m.turnMu.Unlock()
	return m.urls
}

func (m *Manager) turnURLs() []*stun.URI {
	m.turnMu.Lock()
	defer m.turnMu.Unlock()
	return m.turn
}

// Paths returns the state of every peer, sorted by peer ID.
func (m *Manager) Paths() []PathStatus {
	var ps []*peer
	m.eachPeer(func(p *peer) { ps = append(ps, p) })
	out := make([]PathStatus, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.statusSnapshot())
	}
	slices.SortFunc(out, func(a, b PathStatus) int { return strings.Compare(a.PeerID, b.PeerID) })
	return out
}

// Close stops every agent and goroutine of the Manager and tells the peers (best effort, about a
// second at most). The Socket stays open: it belongs to the caller. A second Close returns an
// error wrapping net.ErrClosed.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errClosed("manager")
	}
	m.closed = true
	peers := m.peers
	m.peers = map[string]*peer{}
	m.mu.Unlock()
	for _, p := range peers {
		p.cancel()
	}
	m.wg.Wait()
	m.cancel()
	if err := m.mux.Close(); err != nil { // closes the view, which ends the mux's reader
		return fmt.Errorf("natt: manager: close mux: %w", err)
	}
	return nil
}

// controlling reports whether this side controls ICE with the peer of key remote: the side with
// the smaller key does.
func (m *Manager) controlling(remote key.Key) bool {
	return bytes.Compare(m.cfg.LocalKey[:], remote[:]) < 0
}
