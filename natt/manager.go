package natt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"
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

// CandidateType is the kind of an ICE candidate.
type CandidateType string

// Candidate types.
const (
	CandidateHost  CandidateType = "host"  // an address of a local interface
	CandidateSrflx CandidateType = "srflx" // server-reflexive: the NAT's public mapping, learned by STUN
	CandidatePrflx CandidateType = "prflx" // peer-reflexive: learned from a connectivity check
	CandidateRelay CandidateType = "relay" // relayed through a TURN server
)

func candidateType(t ice.CandidateType) CandidateType {
	switch t {
	case ice.CandidateTypeHost:
		return CandidateHost
	case ice.CandidateTypeServerReflexive:
		return CandidateSrflx
	case ice.CandidateTypePeerReflexive:
		return CandidatePrflx
	case ice.CandidateTypeRelay:
		return CandidateRelay
	default:
		return CandidateType(t.String())
	}
}

// Path is the candidate pair ICE selected for a peer. The zero Path (Valid false) means no path.
type Path struct {
	// Local is the local candidate's address: the shared socket's address for a host candidate,
	// the NAT's public mapping for srflx, the TURN allocation for relay.
	Local netip.AddrPort
	// Remote is where the peer's traffic goes: for a direct pair (local type host, srflx or
	// prflx) WireGuard sends to Remote on the shared socket.
	Remote     netip.AddrPort
	LocalType  CandidateType
	RemoteType CandidateType
	Since      time.Time // when the pair was selected

	// Send writes one datagram (a WireGuard message) to the peer through the selected pair:
	// through the TURN allocation when the local candidate is relayed, from the shared socket
	// to the peer's allocation when only the remote one is. It is set for relayed paths only
	// (nil for direct ones, whose traffic goes straight to Remote on the shared socket) and
	// works until the session ends; it is safe for concurrent use and does not keep b. What
	// the peer sends back over a relayed pair arrives through Config.OnRelayPacket.
	Send func(b []byte) error

	session string // the ICE session that selected the pair
}

// Valid reports whether p is a path (not the "no path" zero value).
func (p Path) Valid() bool { return p.Remote.IsValid() }

// Relayed reports whether the path goes through a TURN relay on either side.
func (p Path) Relayed() bool { return p.LocalType == CandidateRelay || p.RemoteType == CandidateRelay }

func (p Path) String() string {
	if !p.Valid() {
		return "none"
	}
	return fmt.Sprintf("%s %v -> %s %v", p.LocalType, p.Local, p.RemoteType, p.Remote)
}

func (p Path) samePair(o Path) bool {
	return p.Local == o.Local && p.Remote == o.Remote && p.LocalType == o.LocalType && p.RemoteType == o.RemoteType
}

// PeerState is where a peer's ICE session stands.
type PeerState string

// Peer states.
const (
	// StateNew: the peer was just added and its first session has not started yet. It is not
	// a verdict on the path: a caller waiting for NAT traversal to settle must keep waiting.
	StateNew          PeerState = "new"
	StateOffering     PeerState = "offering"     // our offer is out, waiting for the answer
	StateChecking     PeerState = "checking"     // credentials exchanged, connectivity checks running
	StateConnected    PeerState = "connected"    // a pair is selected; consent checks keep it alive
	StateDisconnected PeerState = "disconnected" // consent checks stopped getting answers
	StateWaiting      PeerState = "waiting"      // a session failed or ended (Reason says why); a new one starts after a backoff
	StateClosed       PeerState = "closed"
)

// PathStatus describes one peer's ICE state.
type PathStatus struct {
	PeerID      string
	PeerKey     [32]byte
	Controlling bool // this side is the controlling agent (its public key is the smaller)
	State       PeerState
	Session     string // current session ID, "" while new or waiting
	Path        Path   // the selected pair; zero when none
	Sessions    int    // sessions started with this peer so far (offers made or answered)
	Failures    int    // sessions that failed, were disconnected or were ended by the peer
	Reason      string // why the last session was lost; "" once connected again
	Changed     time.Time
}

// TURNServer is a TURN relay and the credentials to use it.
type TURNServer struct {
	// URL is "turn:host:port?transport=udp", "turn:host:port?transport=tcp" (for hosts whose
	// network drops UDP) or "turns:host:port?transport=tcp" (TLS). Without transport, turn:
	// means UDP and turns: TCP.
	URL                string
	Username, Password string
}

// Config configures a Manager.
type Config struct {
	// LocalKey is this node's WireGuard public key; key order decides ICE roles.
	LocalKey [32]byte
	// Socket is the shared socket (required). The Manager is its only reader (Discover,
	// DetectNAT and a Monitor may share it: they do not read it). Close leaves it open.
	Socket *Socket
	// STUNServers are "host:port" STUN servers for server-reflexive candidates.
	STUNServers []string
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Signal sends a signaling payload to a peer through the coordinator (required). It is
	// called from one goroutine per peer, in order; an error is logged and recovered from by
	// retransmission.
	Signal func(ctx context.Context, peerID string, payload []byte) error
	// OnPath is called when a peer's selected pair changes, and with the zero Path when the
	// path is lost. Calls for one peer are serialized; they must not block for long nor call
	// Close. No call is made after Close returns, nor, bar one racing call, after RemovePeer.
	// For a relayed path (p.Relayed()), the peer's WireGuard packets must go through p.Send.
	OnPath func(peerID string, peerKey [32]byte, p Path)

	// TURN are the relays for relayed candidates (see also SetTURN). A session gathers relayed
	// candidates (a TURN allocation) only when a relay is likely needed: see SetLocalNAT and
	// SetPeerSymmetric. ICE selects a relayed pair only when no direct pair works, and while a
	// peer is relayed it looks for a direct pair again every UpgradeInterval.
	TURN []TURNServer
	// OnRelayPacket receives the datagrams (not STUN) the peer sent over a relayed pair: the
	// root hands them to WireGuard (mesh.InjectPacket). It is called from one goroutine per
	// session; it must not block for long, and b is only valid during the call.
	OnRelayPacket func(peerID string, peerKey [32]byte, b []byte)
	// OnTrouble, when set, is called when a peer's session stops working: its consent checks go
	// unanswered or no candidate pair works. The peer may be gone, or this host's own NAT
	// mapping may have changed; the root re-checks its NAT. It is called from the peer's
	// goroutine and must not block.
	OnTrouble func(peerID string)
	// RelayOnly gathers relayed candidates only (for tests, and for networks where nothing but
	// the relay works). It requires TURN servers.
	RelayOnly bool
	// UpgradeInterval is how often the controlling side of a relayed peer starts a new session
	// to look for a direct pair; the relayed path stays in use until the new session selects
	// a pair [45s, jittered].
	UpgradeInterval time.Duration

	// Host candidates: loopback addresses are left out unless IncludeLoopback; InterfaceFilter
	// (by interface name) and IPFilter further restrict them; IPv6 adds udp6 (udp4 only
	// otherwise).
	IncludeLoopback bool
	InterfaceFilter func(name string) bool
	IPFilter        func(netip.Addr) bool
	IPv6            bool

	// Timing; zero values take the defaults in brackets.
	KeepaliveInterval   time.Duration // consent checks on the selected pair [2s]
	DisconnectedTimeout time.Duration // no answer for this long: disconnected [5s]
	FailedTimeout       time.Duration // then failed after this much more [10s]
	CheckInterval       time.Duration // connectivity-check pacing [200ms]
	OfferTimeout        time.Duration // first retransmission of an unanswered offer [3s]
	BackoffMin          time.Duration // first delay before restarting a failed session [500ms]
	BackoffMax          time.Duration // cap for restart and retransmission delays [30s]
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.KeepaliveInterval, 2*time.Second)
	def(&c.DisconnectedTimeout, 5*time.Second)
	def(&c.FailedTimeout, 10*time.Second)
	def(&c.CheckInterval, 200*time.Millisecond)
	def(&c.OfferTimeout, 3*time.Second)
	def(&c.BackoffMin, 500*time.Millisecond)
	def(&c.BackoffMax, 30*time.Second)
	def(&c.UpgradeInterval, 45*time.Second)
}

// parseURI is stun.ParseURI made safe for input from the network (the coordinator's server
// lists). pion adds a default port to a host part without one and parses again; for a host part
// that still lacks a port once one is added (e.g. "stun:[1]2") it recurses until the stack
// overflows, which kills the process. Such URIs are refused here first.
func parseURI(raw string) (*stun.URI, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	var ae *net.AddrError
	if _, _, err := net.SplitHostPort(u.Opaque); errors.As(err, &ae) && ae.Err == "missing port in address" {
		if _, _, err := net.SplitHostPort(u.Opaque + ":1"); errors.As(err, &ae) && ae.Err == "missing port in address" {
			return nil, fmt.Errorf("host %q: %w", u.Opaque, err)
		}
	}
	return stun.ParseURI(raw)
}

// parseSTUN validates "host:port" STUN servers and turns them into pion URIs.
func parseSTUN(servers []string) ([]*stun.URI, error) {
	urls := make([]*stun.URI, 0, len(servers))
	for _, s := range servers {
		raw := s
		if !strings.HasPrefix(raw, "stun:") {
			raw = "stun:" + raw
		}
		u, err := parseURI(raw)
		if err != nil {
			return nil, fmt.Errorf("natt: STUN server %q: %w", s, err)
		}
		urls = append(urls, u)
	}
	return urls, nil
}

// parseTURN validates TURN servers and turns them into pion URIs.
func parseTURN(servers []TURNServer) ([]*stun.URI, error) {
	out := make([]*stun.URI, 0, len(servers))
	for _, s := range servers {
		u, err := parseURI(s.URL)
		if err != nil {
			return nil, fmt.Errorf("natt: TURN server %q: %w", s.URL, err)
		}
		if u.Scheme != stun.SchemeTypeTURN && u.Scheme != stun.SchemeTypeTURNS {
			return nil, fmt.Errorf("natt: TURN server %q: not a turn: or turns: URL", s.URL)
		}
		if s.Username == "" || s.Password == "" {
			return nil, fmt.Errorf("natt: TURN server %q: username and password are required", s.URL)
		}
		u.Username, u.Password = s.Username, s.Password
		out = append(out, u)
	}
	return out, nil
}

// Manager runs one ICE agent per peer, all over one shared Socket through one pion UDP mux.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	view *sockView
	mux  *iceMux
	net  bufferedNet // pion's network: large buffers on its TURN sockets

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
	return &Manager{
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
	}, nil
}

// AddPeer starts ICE with a peer: this side offers at once (the other side, if it offers too,
// is reconciled by key order). Adding a peer that is already there with the same key does
// nothing.
func (m *Manager) AddPeer(peerID string, key [32]byte) error {
	if peerID == "" {
		return errors.New("natt: AddPeer: empty peer ID")
	}
	if key == m.cfg.LocalKey {
		return errors.New("natt: AddPeer: peer has our own key")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("natt: AddPeer: %w", net.ErrClosed)
	}
	if p, ok := m.peers[peerID]; ok {
		if p.key == key {
			return nil
		}
		return fmt.Errorf("natt: AddPeer %s: %w", peerID, ErrPeerExists)
	}
	p := newPeer(m, peerID, key)
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
		return fmt.Errorf("natt: signal from %s: %w", fromPeerID, err)
	}
	m.mu.Lock()
	p, ok := m.peers[fromPeerID]
	closed := m.closed
	m.mu.Unlock()
	switch {
	case closed:
		return fmt.Errorf("natt: signal from %s: %w", fromPeerID, net.ErrClosed)
	case !ok:
		return fmt.Errorf("natt: signal from %s: %w", fromPeerID, ErrUnknownPeer)
	}
	select {
	case p.inbox <- msg:
		return nil
	default:
		return fmt.Errorf("natt: signal from %s: %w", fromPeerID, ErrSignalQueueFull)
	}
}

// RestartAll starts a new ICE session with every peer now, without backoff: call it when the
// network changed (a Monitor reported a new NAT mapping, or the host's addresses changed), so
// that fresh candidates are gathered and exchanged. Working paths stay in use until the new
// sessions select theirs.
func (m *Manager) RestartAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.peers {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
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
	if m.cfg.RelayOnly && len(turn) == 0 {
		return errors.New("natt: SetTURN: RelayOnly needs TURN servers")
	}
	m.turnMu.Lock()
	m.turn = turn
	m.turnMu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.peers {
		if p.statusSnapshot().Path.Relayed() {
			select {
			case p.kick <- struct{}{}:
			default:
			}
		} else {
			p.reconsider() // relays may have appeared or gone
		}
	}
	return nil
}

// SetLocalNAT tells the Manager what this host's NAT check found (a Monitor's result), which
// decides whether its sessions gather relayed candidates. Behind a symmetric NAT, or while the
// type is unknown (not checked yet, no STUN server answered — UDP may be blocked — or a single
// server could not tell), every session does: direct paths are unlikely or unproven. Behind an
// endpoint-independent NAT or none, only sessions with peers that need a relay do (see
// SetPeerSymmetric), and sessions with a peer whose previous session failed without one.
// Allocating for every peer would load the relay with O(peers) allocations per device and let
// a per-credential quota starve the one peer that needs it. A session that is already
// connected directly keeps its path; one that holds an allocation it no longer needs is
// replaced by one without, its direct path staying in use.
func (m *Manager) SetLocalNAT(t NATType) {
	m.natMu.Lock()
	changed := m.localNAT != t
	m.localNAT = t
	m.natMu.Unlock()
	if changed {
		m.reconsiderAll()
	}
}

// SetPeerSymmetric records whether a peer reported (through the coordinator) being behind a
// symmetric NAT: sessions with such a peer gather relayed candidates. It may be called before
// AddPeer; RemovePeer forgets it.
func (m *Manager) SetPeerSymmetric(peerID string, symmetric bool) {
	m.natMu.Lock()
	changed := m.symPeers[peerID] != symmetric
	if symmetric {
		m.symPeers[peerID] = true
	} else {
		delete(m.symPeers, peerID)
	}
	m.natMu.Unlock()
	if !changed {
		return
	}
	m.mu.Lock()
	p := m.peers[peerID]
	m.mu.Unlock()
	if p != nil {
		p.reconsider()
	}
}

func (m *Manager) reconsiderAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.peers {
		p.reconsider()
	}
}

// relayHint reports whether this host's NAT, or the peer's, makes a relay likely to be needed.
func (m *Manager) relayHint(peerID string) (bool, string) {
	m.natMu.Lock()
	defer m.natMu.Unlock()
	switch {
	case m.localNAT == NATSymmetric:
		return true, "this host is behind a symmetric NAT"
	case m.localNAT == NATUnknown:
		return true, "this host's NAT type is unknown"
	case m.symPeers[peerID]:
		return true, "the peer is behind a symmetric NAT"
	}
	return false, ""
}

func (m *Manager) turnURLs() []*stun.URI {
	m.turnMu.Lock()
	defer m.turnMu.Unlock()
	return m.turn
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

func (m *Manager) stunURLs() []*stun.URI {
	m.turnMu.Lock()
	defer m.turnMu.Unlock()
	return m.urls
}

// Restart starts a new ICE session with one peer now, without backoff (for example when the
// coordinator reports that the peer's endpoints changed).
func (m *Manager) Restart(peerID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.peers[peerID]
	if !ok {
		return fmt.Errorf("natt: restart %s: %w", peerID, ErrUnknownPeer)
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return nil
}

// Paths returns the state of every peer, sorted by peer ID.
func (m *Manager) Paths() []PathStatus {
	m.mu.Lock()
	ps := make([]*peer, 0, len(m.peers))
	for _, p := range m.peers {
		ps = append(ps, p)
	}
	m.mu.Unlock()
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
		return fmt.Errorf("natt: close: %w", net.ErrClosed)
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
	err := m.mux.Close() // closes the view, which ends the mux's reader
	if err != nil {
		return fmt.Errorf("natt: close mux: %w", err)
	}
	return nil
}

func (m *Manager) controlling(remote [32]byte) bool {
	return bytes.Compare(m.cfg.LocalKey[:], remote[:]) < 0
}

// newAgent makes an agent for one session; relay says whether it gathers relayed candidates
// (makes TURN allocations).
func (m *Manager) newAgent(relay bool) (*ice.Agent, error) {
	networks := []ice.NetworkType{ice.NetworkTypeUDP4}
	turnTransports := []ice.NetworkType{ice.NetworkTypeUDP4, ice.NetworkTypeTCP4}
	if m.cfg.IPv6 {
		networks = append(networks, ice.NetworkTypeUDP6)
		turnTransports = append(turnTransports, ice.NetworkTypeUDP6, ice.NetworkTypeTCP6)
	}
	// Candidate types: their type preferences (host > prflx > srflx > relay) make ICE prefer
	// any working direct pair, and pion nominates a relayed pair only after waiting 2 s for a
	// better one. Relayed candidates come from TURN allocations pion makes on sockets of its
	// own (not the shared one). Without relay the TURN servers stay in the list: they answer
	// STUN, for server-reflexive candidates, and pion allocates only for the relay type.
	types := []ice.CandidateType{ice.CandidateTypeHost, ice.CandidateTypeServerReflexive}
	urls := m.stunURLs()
	if turn := m.turnURLs(); len(turn) > 0 {
		urls = append(slices.Clip(urls), turn...)
		switch {
		case m.cfg.RelayOnly:
			types = []ice.CandidateType{ice.CandidateTypeRelay}
			urls = turn
		case relay:
			types = append(types, ice.CandidateTypeRelay)
		}
	}
	// pion's wait before nominating a relayed pair (2 s, for a direct pair to show up) does
	// not apply when there are relayed candidates only.
	relayWait := 2 * time.Second
	if m.cfg.RelayOnly {
		relayWait = 0
	}
	opts := []ice.AgentOption{
		ice.WithNetworkTypes(networks),
		ice.WithCandidateTypes(types),
		ice.WithTURNTransportProtocols(turnTransports),
		ice.WithUDPMux(m.mux),
		ice.WithUDPMuxSrflx(m.mux),
		ice.WithUrls(urls),
		ice.WithNet(m.net),
		ice.WithRelayAcceptanceMinWait(relayWait),
		ice.WithMulticastDNSMode(ice.MulticastDNSModeDisabled),
		ice.WithKeepaliveInterval(m.cfg.KeepaliveInterval),
		ice.WithDisconnectedTimeout(m.cfg.DisconnectedTimeout),
		ice.WithFailedTimeout(m.cfg.FailedTimeout),
		ice.WithCheckInterval(m.cfg.CheckInterval),
		ice.WithSTUNGatherTimeout(5 * time.Second),
		ice.WithLoggerFactory(pionLoggerFactory{m.log}),
	}
	if m.cfg.IncludeLoopback {
		opts = append(opts, ice.WithIncludeLoopback())
	}
	if m.cfg.IPFilter != nil {
		f := m.cfg.IPFilter
		opts = append(opts, ice.WithIPFilter(func(ip net.IP) bool {
			a, ok := netip.AddrFromSlice(ip)
			return ok && f(a.Unmap())
		}))
	}
	if m.cfg.InterfaceFilter != nil {
		opts = append(opts, ice.WithInterfaceFilter(m.cfg.InterfaceFilter))
	}
	a, err := ice.NewAgentWithOptions(opts...)
	if err != nil {
		return nil, fmt.Errorf("natt: new ICE agent: %w", err)
	}
	return a, nil
}
