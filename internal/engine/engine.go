// Package engine is what a [nexodus.Node] runs once started: registration with the coordinator
// and the state directory, the control loop that folds the coordinator's event stream into a
// [PeerMap], and the data plane — the WireGuard mesh and NAT traversal on one UDP socket — that
// the peer map drives. The root package is a facade over it: it validates the Node's fields,
// starts an Engine lazily and turns its [Snapshot] into the public status types.
//
// Calls go one way: facade → engine → mesh, natt, client. Nothing here calls back up into the
// facade except through the callbacks in [Config].
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/key"
)

// Sentinel errors, re-exported by the facade.
var (
	// ErrNoAuthKey: the node has no registration key and no saved identity to come back with.
	ErrNoAuthKey = errors.New("nexodus: no auth key and no saved device state")
	// ErrUnknownPeer: Dial was given a hostname no peer of the organization has.
	ErrUnknownPeer = errors.New("nexodus: no such peer")
)

// requestTimeout bounds one attempt of a request to the coordinator (not the event stream), so
// that a coordinator that accepts connections but never answers costs one attempt, not the
// caller's whole budget.
const requestTimeout = 10 * time.Second

// keepalive keeps NAT mappings open and lets each side notice a lost peer.
const keepalive = 25 * time.Second

// closeTimeout bounds what Close spends telling the coordinator an ephemeral device is gone.
const closeTimeout = 5 * time.Second

// Config is a validated Node configuration.
type Config struct {
	ControlURL string // without a trailing slash
	AuthKey    string
	// OrganizationID is where to register when AuthKey is a user token (set by Login).
	OrganizationID string
	revokeAuthKey  bool   // AuthKey came from Login: revoke it once registered
	Hostname       string // a valid DNS label
	StateDir       string // empty: ephemeral
	Logger         *slog.Logger
	ListenPort     uint16
	HTTPClient     *http.Client // nil: a default
	// STUNServers override the coordinator's list when set.
	STUNServers []string
	// ForceRelay sends every peer's traffic through a TURN relay.
	ForceRelay bool
	// OnPeers, if set, learns of peers that joined, changed or left, from the control loop's
	// goroutine, one call at a time.
	OnPeers func([]Change)
	// OnPath, if set, learns that NAT traversal chose a new path to a peer (or lost it), by
	// device ID, from NAT traversal's goroutines.
	OnPath func(deviceID string)
	// OnStop, if set, learns once that the coordinator cut the node off, and why (an error
	// wrapping ErrCutOff). Close does not call it.
	OnStop func(reason error)
	// TestHookReaddress, when set, runs in the tunnel rebuild between closing the old data plane
	// and building the new one (tests).
	TestHookReaddress func()
}

// Engine is a started node: everything Start made, torn down by Close.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	state  stateStore
	key    key.Key
	pubKey key.Key
	base   *client.Client // no credential; the others share its connection pool
	ctl    *client.Client // authenticated with the device token

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	relay   atomic.Pointer[api.RelayConfig]
	relayed chan struct{}                      // a new relay configuration was applied: refreshRelay starts over
	stream  atomic.Pointer[client.EventStream] // the control stream, once open
	publish chan struct{}                      // asks the publisher to send this node's endpoints again

	mu        sync.RWMutex
	peers     PeerMap // this device and its peers, as the control plane last said
	stun      []string
	dp        *dataplane
	connected bool
	stopErr   error // set once the coordinator cut the node off (cutOff)
}

// Start registers the node (or comes back as its saved device), brings up the data plane and
// returns once it knows its organization's peers. ctx bounds the start; life, the engine's
// whole run (its cancellation is as good as Close for the background work).
func Start(ctx, life context.Context, cfg Config) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		cfg:     cfg,
		log:     cfg.Logger,
		state:   stateStore{dir: cfg.StateDir},
		publish: make(chan struct{}, 1),
		relayed: make(chan struct{}, 1),
	}
	var err error
	if e.key, err = e.state.loadOrCreateKey(); err != nil {
		return nil, fmt.Errorf("nexodus: %w", err)
	}
	e.pubKey = e.key.Public()
	ok := false
	defer func() {
		if !ok && e.base != nil {
			e.base.CloseIdleConnections()
		}
	}()
	self, err := e.register(ctx)
	if err != nil {
		return nil, err
	}
	e.peers = PeerMap{Self: self}
	e.stun = e.relayConfig(ctx)
	e.ctx, e.cancel = context.WithCancel(life)
	defer func() {
		if !ok {
			e.cancel()
			e.wg.Wait()
		}
	}()
	dp, err := e.newDataplane(ctx, cfg.ListenPort, self, e.stun, e.relay.Load())
	if err != nil {
		return nil, err
	}
	e.dp = dp
	defer func() {
		if !ok {
			dp.close()
		}
	}()

	// Publish where this node can be reached, now that the socket's port is known. STUN
	// results come later and are published again by the publisher.
	if err := e.publishEndpoints(ctx); err != nil {
		return nil, err
	}
	e.wg.Add(2)
	go e.publisher()
	go e.refreshRelay()

	stream := e.openStream()
	// Start returns only once the node knows its peers, so a Dial right after Up works.
	first, err := stream.Next(ctx)
	if err != nil {
		stream.Close()
		return nil, fmt.Errorf("nexodus: read peer list: %w", err)
	}
	e.apply(ctx, first)
	ok = true
	e.log.Info("node up", "device", self.ID, "ipv4", self.TunnelIPv4, "ipv6", self.TunnelIPv6,
		"udp", dp.mesh.LocalAddr().String(), "stun", e.stun)
	e.wg.Add(1)
	go e.follow(stream)
	return e, nil
}

// dataplane returns the data plane in use (a rebuild replaces it).
func (e *Engine) dataplane() *dataplane {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.dp
}

// Dial connects to a peer given as "host:port", host a peer's hostname or a tunnel IP.
func (e *Engine) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	if err := e.Err(); err != nil {
		return nil, fmt.Errorf("nexodus: dial %s: %w", address, err)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("nexodus: dial %s: %w", address, err)
	}
	ip, err := e.resolve(host, network)
	if err != nil {
		return nil, fmt.Errorf("nexodus: dial %s: %w", address, err)
	}
	c, err := e.dataplane().mesh.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
	if err != nil {
		return nil, fmt.Errorf("nexodus: dial %s: %w", address, err)
	}
	return c, nil
}

// resolve turns a peer's hostname or tunnel IP into the tunnel IP to dial. An address that is
// neither this node's nor a peer's (its tunnel addresses or the networks it routes) is refused
// at once: WireGuard would drop the packets and the dial would wait for its deadline.
func (e *Engine) resolve(host, network string) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		e.mu.RLock()
		self := e.peers.Self
		e.mu.RUnlock()
		if _, ok := e.WhoIs(ip); !ok && ip.String() != self.TunnelIPv4 && ip.String() != self.TunnelIPv6 {
			return netip.Addr{}, fmt.Errorf("%w: %s is no address of this organization's devices", ErrUnknownPeer, ip)
		}
		return ip, nil
	}
	e.mu.RLock()
	d, ok := e.peers.Lookup(host)
	e.mu.RUnlock()
	if !ok {
		return netip.Addr{}, fmt.Errorf("%w: %q", ErrUnknownPeer, host)
	}
	s := d.TunnelIPv4
	if network == "tcp6" || network == "udp6" || s == "" {
		s = d.TunnelIPv6
	}
	return netip.ParseAddr(s)
}

// Listen announces on the node's tunnel addresses.
func (e *Engine) Listen(network, address string) (net.Listener, error) {
	if err := e.Err(); err != nil {
		return nil, fmt.Errorf("nexodus: listen %s: %w", address, err)
	}
	l, err := e.dataplane().mesh.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("nexodus: listen %s: %w", address, err)
	}
	return l, nil
}

// ListenPacket listens for UDP on the node's tunnel addresses.
func (e *Engine) ListenPacket(network, address string) (net.PacketConn, error) {
	if err := e.Err(); err != nil {
		return nil, fmt.Errorf("nexodus: listen %s: %w", address, err)
	}
	c, err := e.dataplane().mesh.ListenPacket(network, address)
	if err != nil {
		return nil, fmt.Errorf("nexodus: listen %s: %w", address, err)
	}
	return c, nil
}

// WhoIs finds the peer that owns a tunnel address or routes the network it is in.
func (e *Engine) WhoIs(ip netip.Addr) (Device, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	s := ip.String()
	for _, d := range e.peers.Peers {
		if d.TunnelIPv4 == s || d.TunnelIPv6 == s {
			return ParseDevice(d), true
		}
		for _, c := range d.ChildPrefixes {
			if pfx, err := netip.ParsePrefix(c); err == nil && pfx.Contains(ip) {
				return ParseDevice(d), true
			}
		}
	}
	return Device{}, false
}

// Close stops the background work and the data plane and, for an ephemeral node, removes its
// device from the coordinator. It is called once, by the facade.
func (e *Engine) Close() error {
	e.cancel()
	e.wg.Wait()
	var errs []error
	if e.state.ephemeral() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		err := e.ctl.DeleteDevice(ctx, e.selfID())
		cancel()
		if err != nil && !errors.Is(err, client.ErrNotFound) && !errors.Is(err, client.ErrUnauthorized) {
			errs = append(errs, fmt.Errorf("remove ephemeral device: %w", err))
		}
	}
	if err := e.dataplane().close(); err != nil {
		errs = append(errs, err)
	}
	e.base.CloseIdleConnections()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nexodus: close: %w", err)
	}
	return nil
}

func (e *Engine) selfID() string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.peers.Self.ID
}
