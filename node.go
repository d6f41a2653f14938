package nexodus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Sentinel errors callers may branch on with errors.Is.
var (
	// ErrNoAuthKey: the node has no registration key and no saved identity to come back with.
	ErrNoAuthKey = errors.New("nexodus: no auth key and no saved device state")
	// ErrUnknownPeer: Dial was given a hostname no peer of the organization has.
	ErrUnknownPeer = errors.New("nexodus: no such peer")
	// ErrConfig: a field of the Node is invalid.
	ErrConfig = errors.New("nexodus: invalid configuration")
)

// lazyStartTimeout bounds a start triggered by a method without a context (Listen,
// ListenPacket), so a dead coordinator gives an error instead of a hang.
const lazyStartTimeout = 30 * time.Second

// Node is a device of a Nexodus organization running inside this process. The zero value is
// ready to configure; set the fields before the first method call and do not change them after.
type Node struct {
	// ControlURL is the coordinator's base URL, e.g. "https://coord.example.com".
	ControlURL string
	// AuthKey is a registration key. It is needed for the first start; a node with StateDir
	// comes back later on its saved device token alone.
	AuthKey string
	// Hostname is how peers name this node in Dial; default: the machine's hostname.
	Hostname string
	// StateDir keeps the WireGuard key and device identity across restarts. Empty means an
	// ephemeral node that removes itself from the coordinator on Close.
	StateDir string
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// ListenPort is the UDP port for WireGuard and NAT traversal; 0 picks a free one.
	ListenPort int
	// OnPeerChange, if set, is called for every peer that joins, changes or leaves, one call at
	// a time from the node's own goroutine, so it must not block for long.
	OnPeerChange func(PeerEvent)
	// STUNServers ("host:port") replace the STUN servers the coordinator offers; NAT traversal
	// uses them to learn the node's public address and the kind of NAT in front of it.
	STUNServers []string
	// ControlHTTPClient is used to talk to the coordinator (custom TLS roots, proxies); nil
	// uses a default.
	ControlHTTPClient *http.Client

	relayOnly         bool   // tests: force every path through the relay (export_test.go)
	testHookReaddress func() // tests: see runtimeConfig.testHookReaddress (export_test.go)

	mu      sync.Mutex
	startMu sync.Mutex // serializes start attempts; held for the whole of one
	closed  bool
	life    context.Context // cancelled by Close; every background task derives from it
	kill    context.CancelFunc
	rt      *runtime // set once a start has succeeded
}

// init sets up the lifetime context; n.mu must be held.
func (n *Node) initLocked() {
	if n.life == nil {
		n.life, n.kill = context.WithCancel(context.Background())
	}
}

// Up starts the node if it is not running yet and waits until it is registered, its tunnel is
// up and it has the organization's peer list. It returns the node's status.
func (n *Node) Up(ctx context.Context) (*Status, error) {
	rt, err := n.start(ctx)
	if err != nil {
		return nil, err
	}
	return rt.status(), nil
}

// start runs the node's start once; a failed start may be tried again.
func (n *Node) start(ctx context.Context) (*runtime, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, fmt.Errorf("nexodus: node: %w", net.ErrClosed)
	}
	if n.rt != nil {
		rt := n.rt
		n.mu.Unlock()
		return rt, nil
	}
	n.initLocked()
	life := n.life
	n.mu.Unlock()

	n.startMu.Lock()
	defer n.startMu.Unlock()
	n.mu.Lock()
	rt, closed := n.rt, n.closed
	n.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("nexodus: node: %w", net.ErrClosed)
	}
	if rt != nil {
		return rt, nil
	}

	cfg, err := n.config()
	if err != nil {
		return nil, err
	}
	// The start obeys both the caller's context and Close.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(life, cancel)
	defer stop()

	rt, err = startRuntime(ctx, life, cfg)
	if err != nil {
		if life.Err() != nil {
			return nil, fmt.Errorf("nexodus: node: %w", net.ErrClosed)
		}
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		rt.close()
		return nil, fmt.Errorf("nexodus: node: %w", net.ErrClosed)
	}
	n.rt = rt
	return rt, nil
}

// config validates the fields and fills in defaults.
func (n *Node) config() (runtimeConfig, error) {
	cfg := runtimeConfig{
		authKey:      n.AuthKey,
		hostname:     n.Hostname,
		state:        stateStore{dir: n.StateDir},
		logger:       n.Logger,
		listenPort:   n.ListenPort,
		onPeerChange: n.OnPeerChange,
		httpClient:   n.ControlHTTPClient,
		stunServers:  n.STUNServers,
		relayOnly:    n.relayOnly,

		testHookReaddress: n.testHookReaddress,
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(n.ControlURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("%w: ControlURL %q is not an http(s) URL", ErrConfig, n.ControlURL)
	}
	cfg.controlURL = strings.TrimRight(n.ControlURL, "/")
	if cfg.hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return cfg, fmt.Errorf("%w: no Hostname and none from the OS: %v", ErrConfig, err)
		}
		cfg.hostname = sanitizeHostname(h)
	}
	if !validHostname(cfg.hostname) {
		return cfg, fmt.Errorf("%w: Hostname %q is not a DNS label (letters, digits, '-', at most 63)", ErrConfig, cfg.hostname)
	}
	if cfg.listenPort < 0 || cfg.listenPort > 65535 {
		return cfg, fmt.Errorf("%w: ListenPort %d out of range", ErrConfig, cfg.listenPort)
	}
	return cfg, nil
}

// Dial connects to a peer over the mesh. The address is "host:port" where host is a peer's
// hostname or tunnel IP; network is tcp, tcp4, tcp6, udp, udp4 or udp6. Dial starts the node
// if needed.
func (n *Node) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	rt, err := n.start(ctx)
	if err != nil {
		return nil, err
	}
	return rt.dial(ctx, network, address)
}

// Listen announces on the node's tunnel addresses; address is ":port" or "tunnelIP:port", and
// network tcp, tcp4 or tcp6. Listen starts the node if needed.
func (n *Node) Listen(network, address string) (net.Listener, error) {
	rt, err := n.lazyStart()
	if err != nil {
		return nil, err
	}
	return rt.listen(network, address)
}

// ListenPacket listens for UDP on the node's tunnel addresses; see Listen.
func (n *Node) ListenPacket(network, address string) (net.PacketConn, error) {
	rt, err := n.lazyStart()
	if err != nil {
		return nil, err
	}
	return rt.listenPacket(network, address)
}

func (n *Node) lazyStart() (*runtime, error) {
	ctx, cancel := context.WithTimeout(context.Background(), lazyStartTimeout)
	defer cancel()
	return n.start(ctx)
}

// HTTPClient returns an HTTP client whose connections go over the mesh, so that
// "http://db:8080/" reaches the peer named db. Its requests start the node if needed.
func (n *Node) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:           n.Dial,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

// Status returns a snapshot of the node and its peers; before the node has started it returns
// what is configured and no peers.
func (n *Node) Status() *Status {
	n.mu.Lock()
	rt := n.rt
	n.mu.Unlock()
	if rt == nil {
		return &Status{Hostname: n.Hostname}
	}
	return rt.status()
}

// Peers returns the node's peers; see Status.
func (n *Node) Peers() []Peer {
	return n.Status().Peers
}

// Close stops the node: it ends every connection and listener it made, stops its goroutines
// and, for an ephemeral node, removes the device from the coordinator. A second Close returns
// an error wrapping net.ErrClosed.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return fmt.Errorf("nexodus: node already closed: %w", net.ErrClosed)
	}
	n.closed = true
	n.initLocked()
	n.kill()
	// Drop the runtime so a closed Node that the program still holds keeps no buffers alive.
	rt := n.rt
	n.rt = nil
	n.mu.Unlock()

	// Wait for a start in progress to give up before tearing down what it made.
	n.startMu.Lock()
	defer n.startMu.Unlock()
	if rt == nil {
		return nil
	}
	return rt.close()
}

// WhoIs tells which peer owns a tunnel address, given as "ip" or "ip:port" (an accepted
// connection's RemoteAddr().String(), say). WireGuard authenticated every packet from that
// address with the peer's key, so the answer can be trusted for access decisions.
func (n *Node) WhoIs(addr string) (Peer, bool) {
	n.mu.Lock()
	rt := n.rt
	n.mu.Unlock()
	if rt == nil {
		return Peer{}, false
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return Peer{}, false
		}
		ip = ap.Addr()
	}
	return rt.whoIs(ip.Unmap())
}
