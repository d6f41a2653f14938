package nexodus

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/mesh"
	"github.com/nexodus-sdk/nexodus/natt"
)

// keepalive keeps NAT mappings open and lets each side notice a lost peer.
const keepalive = 25 * time.Second

// closeTimeout bounds what Close spends telling the coordinator an ephemeral device is gone.
const closeTimeout = 5 * time.Second

type runtimeConfig struct {
	controlURL   string
	authKey      string
	hostname     string
	state        stateStore
	logger       *slog.Logger
	listenPort   int
	onPeerChange func(PeerEvent)
	httpClient   *http.Client
	stunServers  []string // overrides the coordinator's list when set
	relayOnly    bool     // tests: every path through the relay
	// testHookReaddress, when set, runs in readdress between closing the old data plane and
	// building the new one (tests).
	testHookReaddress func()
}

// runtime is a started node: everything start made, torn down by close.
type runtime struct {
	cfg    runtimeConfig
	log    *slog.Logger
	key    [32]byte
	pubKey string
	base   *client.Client // no credential; the others share its connection pool
	ctl    *client.Client // authenticated with the device token

	ctx    context.Context // ends at close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	stun    []string // STUN servers, "host:port"; under mu once the node is up
	relay   atomic.Pointer[api.RelayConfig]
	relayed chan struct{}                      // a new relay configuration was applied: refreshRelay starts over
	stream  atomic.Pointer[client.EventStream] // the control stream, once open
	publish chan struct{}                      // asks the publisher to send this node's endpoints again

	mu        sync.RWMutex
	self      api.Device
	dp        *dataplane
	peers     map[string]api.Device // by device ID
	connected bool
	removed   bool // the coordinator deleted this device
}

func startRuntime(ctx, life context.Context, cfg runtimeConfig) (*runtime, error) {
	key, err := cfg.state.loadOrCreateKey()
	if err != nil {
		return nil, fmt.Errorf("nexodus: %w", err)
	}
	pub, err := publicKey(key)
	if err != nil {
		return nil, fmt.Errorf("nexodus: %w", err)
	}
	rt := &runtime{
		cfg:     cfg,
		log:     cfg.logger,
		key:     key,
		pubKey:  base64.StdEncoding.EncodeToString(pub[:]),
		peers:   map[string]api.Device{},
		publish: make(chan struct{}, 1),
		relayed: make(chan struct{}, 1),
	}
	ok := false
	defer func() {
		if !ok && rt.base != nil {
			rt.base.CloseIdleConnections()
		}
	}()
	if err := rt.register(ctx); err != nil {
		return nil, err
	}
	rt.stun = rt.relayConfig(ctx)
	rt.ctx, rt.cancel = context.WithCancel(life)
	defer func() {
		if !ok {
			rt.cancel()
			rt.wg.Wait()
		}
	}()
	dp, err := rt.newDataplane(ctx, uint16(cfg.listenPort), rt.self, rt.stun, rt.relay.Load())
	if err != nil {
		return nil, err
	}
	rt.dp = dp
	defer func() {
		if !ok {
			dp.close()
		}
	}()

	// Publish where this node can be reached, now that the socket's port is known. STUN
	// results come later and are published again by the publisher.
	if err := rt.publishEndpoints(ctx); err != nil {
		return nil, err
	}
	rt.wg.Add(2)
	go rt.publisher()
	go rt.refreshRelay()

	stream := rt.ctl.WatchDevice(rt.ctx, rt.self.ID, client.WatchOptions{
		OnState: func(connected bool, err error) {
			rt.mu.Lock()
			rt.connected = connected
			rt.mu.Unlock()
			if err != nil && !connected {
				rt.log.Warn("control stream down", "err", err)
			}
		},
	})
	rt.stream.Store(stream)
	// Up returns only once the node knows its peers, so a Dial right after Up works.
	first, err := stream.Next(ctx)
	if err != nil {
		stream.Close()
		return nil, fmt.Errorf("nexodus: read peer list: %w", err)
	}
	rt.apply(ctx, first)
	ok = true
	rt.log.Info("node up", "device", rt.self.ID, "ipv4", rt.self.TunnelIPv4, "ipv6", rt.self.TunnelIPv6,
		"udp", dp.mesh.LocalAddr().String(), "stun", rt.stun)
	rt.wg.Add(1)
	go rt.follow(stream)
	return rt, nil
}

// register finds this node's device: the saved one if its token still works, else a new
// registration with the auth key.
func (rt *runtime) register(ctx context.Context) error {
	cfg := rt.cfg
	saved, err := cfg.state.loadDevice()
	if err != nil {
		return fmt.Errorf("nexodus: %w", err)
	}
	if saved.DeviceID != "" && saved.Token != "" && saved.ControlURL == cfg.controlURL {
		c, err := rt.newClient(saved.Token)
		if err != nil {
			return err
		}
		dev, err := c.GetDevice(ctx, saved.DeviceID)
		switch {
		case err == nil && dev.PublicKey == rt.pubKey:
			rt.ctl, rt.self = c, *dev
			return nil
		case err == nil, errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrNotFound),
			errors.Is(err, client.ErrForbidden):
			rt.log.Info("saved device is gone; registering again", "device", saved.DeviceID, "err", err)
		default:
			return fmt.Errorf("nexodus: load device: %w", err)
		}
	}
	if cfg.authKey == "" {
		return ErrNoAuthKey
	}
	reg, err := rt.newClient(cfg.authKey)
	if err != nil {
		return err
	}
	resp, err := reg.RegisterDevice(ctx, api.RegisterDeviceRequest{
		PublicKey: rt.pubKey,
		Hostname:  cfg.hostname,
		Ephemeral: cfg.state.ephemeral(),
	})
	if err != nil {
		return fmt.Errorf("nexodus: register device: %w", err)
	}
	token, err := client.OpenDeviceToken(rt.key, *resp)
	if err != nil {
		return fmt.Errorf("nexodus: register device: %w", err)
	}
	if rt.ctl, err = rt.newClient(token); err != nil {
		return err
	}
	rt.self = resp.Device
	err = cfg.state.saveDevice(deviceState{
		ControlURL:     cfg.controlURL,
		DeviceID:       resp.Device.ID,
		OrganizationID: resp.Device.OrganizationID,
		Token:          token,
	})
	if err != nil {
		return fmt.Errorf("nexodus: %w", err)
	}
	return nil
}

// newClient returns a client with the given credential on the node's one connection pool.
func (rt *runtime) newClient(token string) (*client.Client, error) {
	if rt.base == nil {
		opts := []client.Option{client.WithLogger(rt.log)}
		if rt.cfg.httpClient != nil {
			opts = append(opts, client.WithHTTPClient(rt.cfg.httpClient))
		}
		c, err := client.New(rt.cfg.controlURL, opts...)
		if err != nil {
			return nil, fmt.Errorf("nexodus: control client: %w", err)
		}
		rt.base = c
	}
	return rt.base.WithToken(token), nil
}

// newDataplane brings up WireGuard and NAT traversal on the tunnel addresses of self, with the
// given STUN servers and relays. It reads nothing under rt.mu, so that a rebuild need not
// hold it.
func (rt *runtime) newDataplane(ctx context.Context, port uint16, self api.Device, stun []string, relay *api.RelayConfig) (*dataplane, error) {
	var addrs []netip.Addr
	for _, s := range []string{self.TunnelIPv4, self.TunnelIPv6} {
		if s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("nexodus: coordinator gave bad tunnel address %q: %w", s, err)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, errors.New("nexodus: coordinator gave no tunnel address")
	}
	dp, err := newDataplane(ctx, dataplaneConfig{
		key:       rt.key,
		addrs:     addrs,
		port:      port,
		stun:      stun,
		turn:      turnServers(relay),
		relayOnly: rt.cfg.relayOnly,
		logger:    rt.log,
		signal: func(ctx context.Context, deviceID string, payload []byte) error {
			return rt.ctl.Signal(ctx, deviceID, payload)
		},
		onNAT:   func(natt.NATInfo) { rt.requestPublish() },
		onMoved: rt.reconnectControl,
	})
	if err != nil {
		return nil, fmt.Errorf("nexodus: %w", err)
	}
	return dp, nil
}

// reconnectControl replaces the node's connections to the coordinator after its public address
// changed. A NAT that lost its mapping drops the coordinator's packets to the old one: the
// event stream (which brings peer updates and ICE signaling) would stay silent until its idle
// timeout or a TCP keepalive noticed, tens of seconds, and a request on a pooled connection
// would be reset.
func (rt *runtime) reconnectControl() {
	rt.log.Info("public address changed; reconnecting to the coordinator")
	rt.base.CloseIdleConnections()
	if s := rt.stream.Load(); s != nil {
		s.Reconnect()
	}
}

// relayConfig fetches the STUN and TURN servers the coordinator offers this device (keeping
// them for refreshRelay) and returns the STUN servers to use: the Node's own list if it has one.
func (rt *runtime) relayConfig(ctx context.Context) []string {
	rc, err := rt.ctl.RelayConfig(ctx, rt.self.ID)
	if err != nil {
		// An older coordinator or a passing failure: run without (host candidates and
		// peer-reflexive discovery still work) rather than refuse to start.
		rt.log.Warn("no STUN/TURN servers from the coordinator", "err", err)
		rc = &api.RelayConfig{}
	}
	rt.relay.Store(rc)
	if len(rt.cfg.stunServers) > 0 {
		return rt.cfg.stunServers
	}
	return rc.STUN
}

// refreshRelay is the fallback for fresh TURN credentials: the coordinator pushes them on the
// event stream (api.EventRelay) at half their lifetime, so this fetches them only when three
// quarters of the remaining life have passed without a push (the stream was down).
func (rt *runtime) refreshRelay() {
	defer rt.wg.Done()
	retry := 5 * time.Second
	for {
		rc := rt.relay.Load()
		wait := time.Hour
		if !rc.ExpiresAt.IsZero() {
			wait = max(time.Until(rc.ExpiresAt)*3/4, retry)
		}
		t := time.NewTimer(wait)
		select {
		case <-rt.ctx.Done():
			t.Stop()
			return
		case <-rt.relayed:
			t.Stop()
			continue // a push arrived: count from its credentials
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(rt.ctx, 30*time.Second)
		fresh, err := rt.ctl.RelayConfig(ctx, rt.self.ID)
		cancel()
		if err != nil {
			rt.log.Warn("refresh relay credentials", "err", err)
			continue
		}
		rt.setRelay(fresh, false)
	}
}

// setRelay hands new relay servers and credentials to NAT traversal. Handing them over restarts
// ICE on relayed paths (their allocations need the new credentials), so a pushed configuration
// that only renews credentials the node holds with more than three quarters of the new ones'
// life left is not applied: the push right after every stream (re)connection would otherwise
// disturb relayed paths for nothing. The coordinator pushes again at half the lifetime.
func (rt *runtime) setRelay(fresh *api.RelayConfig, pushed bool) {
	cur := rt.relay.Load()
	if pushed && sameRelayServers(cur, fresh) &&
		(fresh.Username == "" || cur.Username != "" && time.Until(cur.ExpiresAt) > time.Until(fresh.ExpiresAt)*3/4) {
		return
	}
	rt.relay.Store(fresh)
	rt.mu.Lock()
	ownSTUN := len(rt.cfg.stunServers) > 0 // the Node's own list wins over the coordinator's
	if !ownSTUN {
		rt.stun = fresh.STUN
	}
	dp := rt.dp
	rt.mu.Unlock()
	if dp != nil {
		if !ownSTUN {
			dp.setSTUN(fresh.STUN)
		}
		dp.setTURN(turnServers(fresh))
	}
	if pushed {
		rt.log.Info("relay servers updated by the coordinator", "turn", fresh.TURN, "expires", fresh.ExpiresAt)
	}
	select {
	case rt.relayed <- struct{}{}:
	default:
	}
}

// sameRelayServers reports whether two relay configurations name the same servers.
func sameRelayServers(a, b *api.RelayConfig) bool {
	return a != nil && b != nil && slices.Equal(a.STUN, b.STUN) && slices.Equal(a.TURN, b.TURN)
}

// turnServers turns the coordinator's relay list into NAT traversal's.
func turnServers(rc *api.RelayConfig) []natt.TURNServer {
	if rc == nil || rc.Username == "" {
		return nil
	}
	out := make([]natt.TURNServer, 0, len(rc.TURN))
	for _, u := range rc.TURN {
		out = append(out, natt.TURNServer{URL: u, Username: rc.Username, Password: rc.Password})
	}
	return out
}

// requestPublish asks the publisher to send the node's endpoints again (coalescing).
func (rt *runtime) requestPublish() {
	select {
	case rt.publish <- struct{}{}:
	default:
	}
}

// publisher sends the node's endpoints whenever they change, retrying with backoff.
func (rt *runtime) publisher() {
	defer rt.wg.Done()
	backoff := time.Second
	for {
		select {
		case <-rt.ctx.Done():
			return
		case <-rt.publish:
		}
		for {
			ctx, cancel := context.WithTimeout(rt.ctx, 30*time.Second)
			err := rt.publishEndpoints(ctx)
			cancel()
			if err == nil || rt.ctx.Err() != nil {
				backoff = time.Second
				break
			}
			rt.log.Warn("publish endpoints", "err", err, "retry_in", backoff)
			select {
			case <-rt.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}
}

// publishEndpoints tells the coordinator where this node can be reached: its interface
// addresses and, once STUN has answered, its public mapping, and whether its NAT is symmetric.
func (rt *runtime) publishEndpoints(ctx context.Context) error {
	rt.mu.RLock()
	dp, hostname := rt.dp, rt.self.Hostname
	rt.mu.RUnlock()
	nat := dp.natInfo()
	eps := publishedEndpoints(interfaceAddrs(), dp.mesh.LocalAddr().Port(), nat.Reflexive)
	symmetric := nat.Type == natt.NATSymmetric
	upd := api.UpdateDeviceRequest{Endpoints: &eps, SymmetricNAT: &symmetric}
	if hostname != rt.cfg.hostname {
		upd.Hostname = &rt.cfg.hostname
	}
	self, err := rt.ctl.UpdateDevice(ctx, rt.self.ID, upd)
	if err != nil {
		return fmt.Errorf("nexodus: publish endpoints: %w", err)
	}
	rt.mu.Lock()
	rt.self = *self
	rt.mu.Unlock()
	return nil
}

// follow applies the event stream until the node closes.
func (rt *runtime) follow(stream *client.EventStream) {
	defer rt.wg.Done()
	defer stream.Close()
	for {
		ev, err := stream.Next(rt.ctx)
		if err != nil {
			if rt.ctx.Err() == nil {
				// The stream gave up for good (the device token no longer works). The data
				// plane keeps its last peers; Status shows the control plane is gone.
				rt.log.Error("control stream ended", "err", err)
				rt.mu.Lock()
				rt.connected = false
				rt.mu.Unlock()
			}
			return
		}
		rt.apply(rt.ctx, ev)
	}
}

// apply folds one event into the peer table and pushes the result into the tunnel.
func (rt *runtime) apply(ctx context.Context, ev api.Event) {
	rt.mu.Lock()
	before := rt.peers
	after := make(map[string]api.Device, len(before))
	selfBefore := rt.self
	switch ev.Type {
	case api.EventSync:
		for _, d := range ev.Devices {
			if d.ID == rt.self.ID {
				rt.self = d
				continue
			}
			after[d.ID] = d
		}
	case api.EventDeviceAdded, api.EventDeviceUpdated:
		for id, d := range before {
			after[id] = d
		}
		if ev.Device != nil {
			if ev.Device.ID == rt.self.ID {
				rt.self = *ev.Device
			} else if ev.Device.OrganizationID == rt.self.OrganizationID {
				after[ev.Device.ID] = *ev.Device
			}
		}
	case api.EventDeviceRemoved:
		for id, d := range before {
			after[id] = d
		}
		if ev.Device != nil {
			if ev.Device.ID == rt.self.ID && ev.Device.OrganizationID == rt.self.OrganizationID {
				rt.removed = true
				after = map[string]api.Device{}
			}
			delete(after, ev.Device.ID)
		}
	case api.EventSignal:
		dp := rt.dp
		rt.mu.Unlock()
		if ev.Signal != nil {
			dp.handleSignal(ev.Signal.From, ev.Signal.Payload)
		}
		return
	case api.EventRelay:
		rt.mu.Unlock()
		if ev.Relay != nil {
			rt.setRelay(ev.Relay, true)
		}
		return
	default:
		rt.mu.Unlock()
		return
	}
	rt.peers = after
	moved := selfBefore.TunnelIPv4 != rt.self.TunnelIPv4 || selfBefore.TunnelIPv6 != rt.self.TunnelIPv6
	rt.mu.Unlock()

	if moved {
		rt.readdress(ctx)
	}
	rt.pushPeers(ctx)
	rt.notify(before, after)
}

// readdress rebuilds the tunnel after the coordinator gave this device new addresses (it moved
// to another organization). Connections and listeners on the old addresses end.
//
// rt.mu is not held across the slow part: closing the old data plane tells every ICE peer
// (up to a second) and must finish before the new mesh binds the same port. Meanwhile Status,
// WhoIs and Dial answer from the closed data plane (Dial fails with net.ErrClosed) instead of
// waiting. Only apply, on the event stream's goroutine, replaces rt.dp, so no other rebuild
// can interleave.
func (rt *runtime) readdress(ctx context.Context) {
	rt.mu.RLock()
	old, self, stun := rt.dp, rt.self, rt.stun
	rt.mu.RUnlock()
	port := old.mesh.LocalAddr().Port()
	old.close()
	if h := rt.cfg.testHookReaddress; h != nil {
		h()
	}
	relay := rt.relay.Load()
	dp, err := rt.newDataplane(ctx, port, self, stun, relay)
	if err != nil {
		// Keep the closed one in place: dials fail with net.ErrClosed until the next change.
		rt.log.Error("rebuild tunnel after address change", "err", err)
		return
	}
	rt.mu.Lock()
	rt.dp = dp
	stunNow := rt.stun
	rt.mu.Unlock()
	// Relay servers that changed while the new data plane was built went to the old one.
	if cur := rt.relay.Load(); cur != relay {
		dp.setTURN(turnServers(cur))
	}
	if !slices.Equal(stunNow, stun) {
		dp.setSTUN(stunNow)
	}
	rt.log.Info("tunnel re-addressed", "ipv4", self.TunnelIPv4, "ipv6", self.TunnelIPv6)
	rt.requestPublish()
}

// pushPeers hands the current peer table to WireGuard and NAT traversal.
func (rt *runtime) pushPeers(ctx context.Context) {
	rt.mu.RLock()
	dp, peers := rt.dp, rt.peers
	rt.mu.RUnlock()
	dp.setPeers(ctx, peers)
}

func (rt *runtime) notify(before, after map[string]api.Device) {
	fn := rt.cfg.onPeerChange
	if fn == nil {
		return
	}
	for id, d := range after {
		old, ok := before[id]
		switch {
		case !ok:
			fn(PeerEvent{Type: PeerAdded, Peer: peerFromDevice(d)})
		case !sameDevice(old, d):
			fn(PeerEvent{Type: PeerUpdated, Peer: peerFromDevice(d)})
		}
	}
	for id, d := range before {
		if _, ok := after[id]; !ok {
			fn(PeerEvent{Type: PeerRemoved, Peer: peerFromDevice(d)})
		}
	}
}

func (rt *runtime) mesh() *mesh.Mesh {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return rt.dp.mesh
}

func (rt *runtime) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("nexodus: dial %s: %w", address, err)
	}
	ip, err := rt.resolve(host, network)
	if err != nil {
		return nil, fmt.Errorf("nexodus: dial %s: %w", address, err)
	}
	c, err := rt.mesh().DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
	if err != nil {
		return nil, fmt.Errorf("nexodus: dial %s: %w", address, err)
	}
	return c, nil
}

// resolve turns a peer's hostname or tunnel IP into the tunnel IP to dial.
func (rt *runtime) resolve(host, network string) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip, nil
	}
	want6 := network == "tcp6" || network == "udp6"
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	pick := func(d api.Device) (netip.Addr, error) {
		s := d.TunnelIPv4
		if want6 || s == "" {
			s = d.TunnelIPv6
		}
		return netip.ParseAddr(s)
	}
	if hostnameEqual(host, rt.self.Hostname) {
		return pick(rt.self)
	}
	for _, d := range rt.peers {
		if hostnameEqual(host, d.Hostname) {
			return pick(d)
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: %q", ErrUnknownPeer, host)
}

func (rt *runtime) whoIs(ip netip.Addr) (Peer, bool) {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	s := ip.String()
	for _, d := range rt.peers {
		if d.TunnelIPv4 == s || d.TunnelIPv6 == s {
			return peerFromDevice(d), true
		}
		for _, c := range d.ChildPrefixes {
			if pfx, err := netip.ParsePrefix(c); err == nil && pfx.Contains(ip) {
				return peerFromDevice(d), true
			}
		}
	}
	return Peer{}, false
}

func (rt *runtime) listen(network, address string) (net.Listener, error) {
	l, err := rt.mesh().Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("nexodus: listen %s: %w", address, err)
	}
	return l, nil
}

func (rt *runtime) listenPacket(network, address string) (net.PacketConn, error) {
	c, err := rt.mesh().ListenPacket(network, address)
	if err != nil {
		return nil, fmt.Errorf("nexodus: listen %s: %w", address, err)
	}
	return c, nil
}

func (rt *runtime) status() *Status {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	nat := rt.dp.natInfo()
	st := &Status{
		DeviceID:         rt.self.ID,
		OrganizationID:   rt.self.OrganizationID,
		Hostname:         rt.self.Hostname,
		PublicKey:        rt.pubKey,
		LocalAddr:        rt.dp.mesh.LocalAddr(),
		ControlConnected: rt.connected && !rt.removed,
		NAT:              natType(nat.Type),
		ReflexiveAddr:    nat.Reflexive,
	}
	st.TunnelIPv4, _ = netip.ParseAddr(rt.self.TunnelIPv4)
	st.TunnelIPv6, _ = netip.ParseAddr(rt.self.TunnelIPv6)
	stats := map[[32]byte]mesh.PeerStatus{}
	for _, ps := range rt.dp.mesh.Peers() {
		stats[ps.PublicKey] = ps
	}
	now := time.Now()
	traversal := rt.dp.traversal()
	for _, d := range rt.peers {
		p := peerFromDevice(d)
		if key, err := decodeKey(d.PublicKey); err == nil {
			if ps, ok := stats[key]; ok {
				p.Endpoint = ps.Endpoint
				p.PathSince = ps.PathSince
				p.LastHandshake = ps.LastHandshake
				p.RxBytes, p.TxBytes = ps.RxBytes, ps.TxBytes
				if !ps.LastHandshake.IsZero() && now.Sub(ps.LastHandshake) < handshakeFresh {
					p.Path = PathDirect
					if ps.Relayed {
						p.Path = PathRelayed
					}
				}
			}
		}
		ps, ok := traversal[d.ID]
		p.Traversal = traversalString(ps, ok)
		if ice := ps.Path; ice.Valid() {
			p.LocalCandidate = localCandidateType(ice.LocalType)
			p.RemoteCandidate = CandidateType(ice.RemoteType)
			p.PathSince = ice.Since
		}
		st.Peers = append(st.Peers, p)
	}
	sortPeers(st.Peers)
	return st
}

func (rt *runtime) close() error {
	if rt.cancel != nil {
		rt.cancel()
	}
	rt.wg.Wait()
	var errs []error
	if rt.cfg.state.ephemeral() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		err := rt.ctl.DeleteDevice(ctx, rt.self.ID)
		cancel()
		if err != nil && !errors.Is(err, client.ErrNotFound) && !errors.Is(err, client.ErrUnauthorized) {
			errs = append(errs, fmt.Errorf("remove ephemeral device: %w", err))
		}
	}
	rt.mu.RLock()
	dp := rt.dp
	rt.mu.RUnlock()
	if err := dp.close(); err != nil {
		errs = append(errs, err)
	}
	rt.base.CloseIdleConnections()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nexodus: close: %w", err)
	}
	return nil
}

// localCandidateType reports the local end of a pair as RFC 8445 (6.1.2.4) pairs it: a
// server-reflexive candidate is replaced by its base. Every candidate but a relayed one sends
// from the node's one socket, so pion's "srflx" local end is the host candidate in fact.
func localCandidateType(t natt.CandidateType) CandidateType {
	if t == natt.CandidateSrflx {
		return CandidateHost
	}
	return CandidateType(t)
}
