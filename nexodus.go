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

	"github.com/nexodus-sdk/nexodus/internal/engine"
)

// Sentinel errors callers may branch on with errors.Is.
var (
	// ErrNoAuthKey: the node has no registration key and no saved identity to come back with.
	ErrNoAuthKey = engine.ErrNoAuthKey
	// ErrUnknownPeer: Dial was given a hostname no peer of the organization has.
	ErrUnknownPeer = engine.ErrUnknownPeer
	// ErrCutOff: the coordinator no longer accepts the node, which has stopped for good (see
	// Node.Done). ErrDeviceRemoved and ErrCredentialRevoked say why, and wrap it.
	ErrCutOff = engine.ErrCutOff
	// ErrDeviceRemoved: the node's device was deleted, on its own or with its organization or
	// user.
	ErrDeviceRemoved = engine.ErrDeviceRemoved
	// ErrCredentialRevoked: the coordinator refuses the node's device token.
	ErrCredentialRevoked = engine.ErrCredentialRevoked
	// ErrOrganizationDeleted: the node's organization was deleted, with its device; it wraps
	// ErrDeviceRemoved.
	ErrOrganizationDeleted = engine.ErrOrganizationDeleted
	// ErrUserDeleted: the user who registered the node was deleted, with their devices; it
	// wraps ErrDeviceRemoved.
	ErrUserDeleted = engine.ErrUserDeleted
	// ErrConfig: a field of the Node is invalid.
	ErrConfig = errors.New("nexodus: invalid configuration")
)

func init() {
	engine.FromNode = func(node any) *engine.Engine {
		if n, ok := node.(*Node); ok {
			return n.engine()
		}
		return nil
	}
}

// defaultStartTimeout bounds a start (see Node.StartTimeout), so a dead or silent coordinator
// gives an error instead of a hang.
const defaultStartTimeout = 30 * time.Second

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
	// OnPeerChange, if set, is called for every peer that joins, changes or leaves, and when
	// the path to a peer changes (direct ↔ relayed, lost, found). Calls come one at a time from
	// the node's goroutines, so it must not block for long.
	OnPeerChange func(PeerEvent)
	// StartTimeout bounds a start — registration and the first peer list — begun by Up, Dial,
	// Listen or ListenPacket; the caller's context may end it sooner. Default 30 s.
	StartTimeout time.Duration
	// OnLoginURL, if set, lets a node without an AuthKey and without a saved device sign in
	// interactively instead of failing with ErrNoAuthKey: the start asks the coordinator for
	// a device login (the coordinator needs its web console), calls OnLoginURL with the URL a
	// person opens to approve it, and waits for the approval — bounded by the caller's context
	// and the login's expiry, not by StartTimeout. The node then registers into that person's
	// personal organization and revokes the user token the login issued: it keeps only its
	// own device token (with StateDir, later starts need no login).
	OnLoginURL func(url string)
	// STUNServers ("host:port") replace the STUN servers the coordinator offers; NAT traversal
	// uses them to learn the node's public address and the kind of NAT in front of it.
	STUNServers []string
	// ControlHTTPClient is used to talk to the coordinator (custom TLS roots, proxies); nil
	// uses a default.
	ControlHTTPClient *http.Client
	// ForceRelay sends every peer's traffic through a TURN relay of the organization even
	// where a direct path would work: for networks whose policy forbids direct UDP between
	// hosts, and for tests of the relayed path on one machine (see package nexodustest).
	// It has no effect while the organization offers no TURN relay.
	ForceRelay bool

	testHookReaddress func() // tests: see engine.Config.TestHookReaddress (export_test.go)

	mu      sync.Mutex
	startMu sync.Mutex // serializes start attempts; held for the whole of one
	cbMu    sync.Mutex // serializes OnPeerChange calls
	closed  bool
	done    chan struct{}   // closed when the node stops for good; made by initLocked
	stopErr error           // why done is closed
	life    context.Context // cancelled by Close; every background task derives from it
	kill    context.CancelFunc
	eng     *engine.Engine // set once a start has succeeded
}

// init sets up the lifetime context; n.mu must be held.
func (n *Node) initLocked() {
	if n.life == nil {
		n.life, n.kill = context.WithCancel(context.Background())
		n.done = make(chan struct{})
	}
}

// stop records why the node stopped for good and closes Done; the first reason wins.
func (n *Node) stop(reason error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.initLocked()
	if n.stopErr == nil {
		n.stopErr = reason
		close(n.done)
	}
}

// Done returns a channel that is closed when the node stops for good: Close was called, or the
// coordinator cut the node off (its device was removed, its token refused). Err says which.
func (n *Node) Done() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.initLocked()
	return n.done
}

// Err returns nil while the node runs (or has not started); once Done is closed, why: an error
// wrapping ErrCutOff (errors.Is(err, ErrDeviceRemoved), ...) or, after Close, net.ErrClosed.
func (n *Node) Err() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stopErr
}

// Up starts the node if it is not running yet and waits until it is registered, its tunnel is
// up and it has the organization's peer list. It returns the node's status.
func (n *Node) Up(ctx context.Context) (*Status, error) {
	eng, err := n.start(ctx)
	if err != nil {
		return nil, err
	}
	return statusOf(eng.Snapshot()), nil
}

// start runs the node's start once; a failed start may be tried again.
func (n *Node) start(ctx context.Context) (*engine.Engine, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, fmt.Errorf("nexodus: node: %w", net.ErrClosed)
	}
	if n.eng != nil {
		eng := n.eng
		n.mu.Unlock()
		return eng, nil
	}
	n.initLocked()
	life := n.life
	n.mu.Unlock()

	n.startMu.Lock()
	defer n.startMu.Unlock()
	n.mu.Lock()
	eng, closed := n.eng, n.closed
	n.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("nexodus: node: %w", net.ErrClosed)
	}
	if eng != nil {
		return eng, nil
	}

	cfg, err := n.config()
	if err != nil {
		return nil, err
	}
	// The start obeys the caller's context, its own bound and Close.
	timeout := n.StartTimeout
	if timeout <= 0 {
		timeout = defaultStartTimeout
	}
	if n.OnLoginURL != nil {
		if cfg, err = n.login(ctx, life, cfg); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(life, cancel)
	defer stop()

	eng, err = engine.Start(ctx, life, cfg)
	if err != nil {
		if life.Err() != nil {
			return nil, fmt.Errorf("nexodus: node: %w", net.ErrClosed)
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return nil, fmt.Errorf("nexodus: start: no answer from the coordinator at %s in time (StartTimeout %v or the caller's deadline): %w", cfg.ControlURL, timeout, err)
		}
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		eng.Close()
		return nil, fmt.Errorf("nexodus: node: %w", net.ErrClosed)
	}
	n.eng = eng
	return eng, nil
}

// config validates the fields and fills in defaults.
func (n *Node) config() (engine.Config, error) {
	cfg := engine.Config{
		AuthKey:     n.AuthKey,
		Hostname:    n.Hostname,
		StateDir:    n.StateDir,
		Logger:      n.Logger,
		HTTPClient:  n.ControlHTTPClient,
		STUNServers: n.STUNServers,
		ForceRelay:  n.ForceRelay,

		TestHookReaddress: n.testHookReaddress,
	}
	if fn := n.OnPeerChange; fn != nil {
		cfg.OnPeers = func(changes []engine.Change) {
			n.cbMu.Lock()
			defer n.cbMu.Unlock()
			for _, c := range changes {
				fn(PeerEvent{Type: peerEventTypes[c.Kind], Peer: peerOf(engine.ParseDevice(c.Device))})
			}
		}
		cfg.OnPath = func(deviceID string) { n.pathChanged(fn, deviceID) }
	}
	cfg.OnStop = n.stop
	u, err := url.Parse(n.ControlURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("%w: ControlURL %q is not an http(s) URL", ErrConfig, n.ControlURL)
	}
	cfg.ControlURL = strings.TrimRight(n.ControlURL, "/")
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return cfg, fmt.Errorf("%w: no Hostname and none from the OS: %v", ErrConfig, err)
		}
		cfg.Hostname = engine.SanitizeHostname(h)
	}
	if !engine.ValidHostname(cfg.Hostname) {
		return cfg, fmt.Errorf("%w: Hostname %q is not a DNS label (letters, digits, '-', at most 63)", ErrConfig, cfg.Hostname)
	}
	if n.ListenPort < 0 || n.ListenPort > 65535 {
		return cfg, fmt.Errorf("%w: ListenPort %d out of range", ErrConfig, n.ListenPort)
	}
	cfg.ListenPort = uint16(n.ListenPort)
	return cfg, nil
}

// Dial connects to a peer over the mesh. The address is "host:port" where host is a peer's
// hostname or tunnel IP; network is tcp, tcp4, tcp6, udp, udp4 or udp6. Dial starts the node
// if needed.
func (n *Node) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	eng, err := n.start(ctx)
	if err != nil {
		return nil, err
	}
	return eng.Dial(ctx, network, address)
}

// Listen announces on the node's tunnel addresses; address is ":port" or "tunnelIP:port", and
// network tcp, tcp4 or tcp6. Listen starts the node if needed.
func (n *Node) Listen(network, address string) (net.Listener, error) {
	eng, err := n.lazyStart()
	if err != nil {
		return nil, err
	}
	return eng.Listen(network, address)
}

// ListenPacket listens for UDP on the node's tunnel addresses; see Listen.
func (n *Node) ListenPacket(network, address string) (net.PacketConn, error) {
	eng, err := n.lazyStart()
	if err != nil {
		return nil, err
	}
	return eng.ListenPacket(network, address)
}

func (n *Node) lazyStart() (*engine.Engine, error) {
	return n.start(context.Background()) // bounded by StartTimeout
}

// pathChanged tells fn the new path to a peer. During the start there is no engine to ask yet;
// the first Status after Up shows the path.
func (n *Node) pathChanged(fn func(PeerEvent), deviceID string) {
	eng := n.engine()
	if eng == nil {
		return
	}
	for _, p := range statusOf(eng.Snapshot()).Peers {
		if p.DeviceID == deviceID {
			n.cbMu.Lock()
			defer n.cbMu.Unlock()
			fn(PeerEvent{Type: PeerPathChanged, Peer: p})
			return
		}
	}
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
	eng := n.engine()
	if eng == nil {
		return &Status{Hostname: n.Hostname}
	}
	return statusOf(eng.Snapshot())
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
	if n.stopErr == nil {
		n.stopErr = fmt.Errorf("nexodus: node: %w", net.ErrClosed)
		close(n.done)
	}
	// Drop the engine so a closed Node that the program still holds keeps no buffers alive.
	eng := n.eng
	n.eng = nil
	n.mu.Unlock()

	// Wait for a start in progress to give up before tearing down what it made.
	n.startMu.Lock()
	defer n.startMu.Unlock()
	if eng == nil {
		return nil
	}
	return eng.Close()
}

// WhoIs tells which peer owns a tunnel address, given as "ip" or "ip:port" (an accepted
// connection's RemoteAddr().String(), say). WireGuard authenticated every packet from that
// address with the peer's key, so the answer can be trusted for access decisions.
func (n *Node) WhoIs(addr string) (Peer, bool) {
	eng := n.engine()
	if eng == nil {
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
	d, ok := eng.WhoIs(ip.Unmap())
	if !ok {
		return Peer{}, false
	}
	return peerOf(d), true
}

// engine returns the running engine, or nil before a start and after Close.
func (n *Node) engine() *engine.Engine {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.eng
}

// login runs the interactive login of OnLoginURL when the node has no other way to register;
// it is bounded by ctx and Close, not by StartTimeout: a person is in the loop.
func (n *Node) login(ctx, life context.Context, cfg engine.Config) (engine.Config, error) {
	need, err := engine.NeedsLogin(cfg)
	if err != nil || !need {
		return cfg, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(life, cancel)
	defer stop()
	cfg, err = engine.Login(ctx, cfg, n.OnLoginURL)
	if err != nil && life.Err() != nil {
		return cfg, fmt.Errorf("nexodus: node: %w", net.ErrClosed)
	}
	return cfg, err
}
