package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/key"
	"github.com/nexodus-sdk/nexodus/mesh"
	"github.com/nexodus-sdk/nexodus/natt"
)

// recheckSpacing bounds how often trouble with peers' sessions triggers a NAT check.
const recheckSpacing = 2 * time.Second

// dataplane is everything on the node's one UDP socket: the WireGuard mesh, and NAT traversal
// (STUN and one ICE agent per peer) reading the non-WireGuard packets the mesh hands over. It is
// built and torn down as a unit, because a change of tunnel addresses rebuilds the mesh and
// with it the socket ICE runs on.
type dataplane struct {
	log  *slog.Logger
	mesh *mesh.Mesh
	sock *natt.Socket
	ice  *natt.Manager
	cfg  dataplaneConfig

	lastRecheck atomic.Int64 // unix ns of the last NAT re-check asked for by recheckNAT
	// stun is the STUN server list in use ("host:port"): the Monitor reads it before every
	// check, so a changed list (setSTUN) applies without a rebuild.
	stun atomic.Pointer[[]string]

	monMu     sync.Mutex
	mon       *natt.Monitor // nil while there are no STUN servers
	monClosed bool

	mu    sync.Mutex
	keys  map[string]key.Key   // device ID → key of the peers handed to ICE
	paths map[string]natt.Path // device ID → the pair ICE selected
	// pathChanges counts, per device ID, the paths ICE chose or lost (for metrics).
	pathChanges map[string]uint64
	nat         natt.NATInfo
}

type dataplaneConfig struct {
	key   key.Key
	addrs []netip.Addr
	port  uint16
	stun  []string          // "host:port"
	turn  []natt.TURNServer // relays with this device's credentials
	// relayOnly makes every path relayed (tests of the relay on one machine).
	relayOnly bool
	logger    *slog.Logger
	// signal sends an ICE message to a peer through the coordinator.
	signal func(ctx context.Context, deviceID string, payload []byte) error
	// onNAT learns of a changed NAT situation (public address or type).
	onNAT func(natt.NATInfo)
	// onMoved learns that the public address or NAT type changed while running (not the first
	// result): connections through the NAT, the control plane's too, may be dead. It is called
	// before NAT traversal restarts, so that the restart's signaling does not go out on them.
	onMoved func()
	// onPath learns that the pair to a peer changed (after the mesh follows it).
	onPath func(deviceID string)
}

func newDataplane(ctx context.Context, cfg dataplaneConfig) (*dataplane, error) {
	dp := &dataplane{
		log:   cfg.logger,
		cfg:   cfg,
		keys:  map[string]key.Key{},
		paths: map[string]natt.Path{}, pathChanges: map[string]uint64{},
	}
	stun := slices.Clone(cfg.stun)
	dp.stun.Store(&stun)
	// The mesh delivers STUN/ICE packets from its receive path; the socket they go to exists
	// only once the mesh (which owns the UDP socket) does.
	var sock atomic.Pointer[natt.Socket]
	m, err := mesh.New(ctx, mesh.Config{
		PrivateKey: cfg.key,
		Addresses:  cfg.addrs,
		ListenAddr: netip.AddrPortFrom(netip.Addr{}, cfg.port), // dual-stack, any address
		Logger:     cfg.logger.With("component", "mesh"),
		OnPacket: func(b []byte, from netip.AddrPort) {
			if s := sock.Load(); s != nil {
				s.Deliver(b, from)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("start tunnel: %w", err)
	}
	dp.mesh = m
	dp.sock = natt.NewSocket(m.LocalAddr(), m.WriteTo)
	sock.Store(dp.sock)

	dp.ice, err = natt.New(natt.Config{
		LocalKey:    m.PublicKey(),
		Socket:      dp.sock,
		STUNServers: cfg.stun,
		Logger:      cfg.logger.With("component", "ice"),
		Signal:      cfg.signal,
		OnPath:      dp.onPath,
		OnTrouble:   func(string) { dp.recheckNAT() },
		TURN:        cfg.turn,
		RelayOnly:   cfg.relayOnly && len(cfg.turn) > 0,
		// What a peer sends over a relayed pair is WireGuard ciphertext for the mesh.
		OnRelayPacket: func(_ string, peer key.Key, b []byte) {
			if err := m.InjectPacket(peer, b); err != nil && !errors.Is(err, net.ErrClosed) {
				dp.log.Debug("relayed packet dropped", "err", err)
			}
		},
		// Loopback candidates let nodes on one machine find each other; ICE's checks are
		// authenticated, so a stranger on the same port cannot answer them.
		IncludeLoopback: true,
	})
	if err != nil {
		dp.sock.Close()
		m.Close()
		return nil, fmt.Errorf("start NAT traversal: %w", err)
	}
	if len(cfg.stun) > 0 {
		dp.monMu.Lock()
		dp.startMonitorLocked()
		dp.monMu.Unlock()
	}
	return dp, nil
}

// startMonitorLocked starts the NAT monitor; dp.monMu must be held. Its results decide, besides
// the endpoints the node publishes, which ICE sessions gather relayed candidates.
func (dp *dataplane) startMonitorLocked() {
	cfg := dp.cfg
	dp.mon = natt.NewMonitor(natt.MonitorConfig{
		Socket: dp.sock,
		Servers: func(ctx context.Context) ([]netip.AddrPort, error) {
			return natt.ResolveServers(ctx, nil, *dp.stun.Load())
		},
		Logger: cfg.logger.With("component", "nat-monitor"),
		OnChange: func(old, cur natt.NATInfo) {
			dp.mu.Lock()
			dp.nat = cur
			dp.mu.Unlock()
			if cfg.onNAT != nil {
				cfg.onNAT(cur)
			}
			if old.Type != natt.NATUnknown || old.Reflexive.IsValid() {
				// The network changed under us (a new public address: the NAT's mapping
				// changed or we moved): every path may be stale, and so may the
				// connections to the coordinator that signaling goes through.
				if cfg.onMoved != nil {
					cfg.onMoved()
				}
				dp.ice.RestartAll()
			}
		},
		// Every result, changed or not (a check may fail and the next one find the NAT as it
		// was), decides which ICE sessions gather relayed candidates. When no STUN server
		// answered, UDP may be blocked: the type is unknown, and sessions gather them.
		OnCheck: func(cur natt.NATInfo, err error) {
			if err != nil {
				cur.Type = natt.NATUnknown
			}
			dp.ice.SetLocalNAT(cur.Type)
		},
	})
}

// setSTUN makes NAT detection and new ICE sessions use another STUN server list (the
// organization's relays changed).
func (dp *dataplane) setSTUN(servers []string) {
	if slices.Equal(*dp.stun.Load(), servers) {
		return
	}
	servers = slices.Clone(servers)
	dp.stun.Store(&servers)
	if err := dp.ice.SetSTUN(servers); err != nil {
		dp.log.Warn("STUN servers", "err", err)
	}
	dp.monMu.Lock()
	defer dp.monMu.Unlock()
	switch {
	case dp.monClosed:
	case dp.mon == nil && len(servers) > 0:
		dp.startMonitorLocked()
	case dp.mon != nil:
		dp.mon.Recheck()
	}
}

// recheckNAT runs a NAT check now, at most every recheckSpacing: a session with a peer stopped
// working. The peer may have gone, or our own NAT mapping may have changed (a NAT that
// rebooted, flushed its table or changed its port range), which only STUN can tell. Checking
// now rather than at the next periodic check lets the new public address be published, NAT
// traversal restart and the control connections be replaced within seconds.
func (dp *dataplane) recheckNAT() {
	dp.monMu.Lock()
	mon := dp.mon
	dp.monMu.Unlock()
	if mon == nil {
		return
	}
	now := time.Now().UnixNano()
	last := dp.lastRecheck.Load()
	if now-last < int64(recheckSpacing) || !dp.lastRecheck.CompareAndSwap(last, now) {
		return
	}
	dp.log.Debug("path trouble: re-checking the NAT")
	mon.Recheck()
}

// onPath follows ICE's choice: a direct pair becomes the peer's WireGuard path; a lost one
// unpins it, so WireGuard tries every published endpoint until ICE finds a pair again.
func (dp *dataplane) onPath(deviceID string, peer key.Key, p natt.Path) {
	dp.mu.Lock()
	if _, ok := dp.keys[deviceID]; !ok {
		dp.mu.Unlock()
		return // removed meanwhile
	}
	prev, had := dp.paths[deviceID]
	if had != p.Valid() || had && (prev.Remote != p.Remote || prev.Relayed() != p.Relayed()) {
		dp.pathChanges[deviceID]++ // found, lost, moved, or direct ↔ relayed
	}
	if p.Valid() {
		dp.paths[deviceID] = p
	} else {
		delete(dp.paths, deviceID)
	}
	dp.mu.Unlock()
	var err error
	switch {
	case p.Valid() && p.Relayed():
		err = dp.mesh.SetPeerRelay(peer, p.Send)
	case p.Valid() && had && !prev.Relayed() && prev.Remote == p.Remote:
		// The same address under other candidate types (a peer-reflexive candidate replaced
		// by the one the peer signaled): the pin stands. Pinning again would start a second
		// handshake over the one in flight, and the two sides can end up with different
		// sessions.
	case p.Valid():
		err = dp.mesh.SetPeerPath(peer, p.Remote)
	default:
		// No pair: back to trying every published endpoint (this also leaves a relay route).
		err = dp.mesh.SetPeerPath(peer, netip.AddrPort{})
	}
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, mesh.ErrUnknownPeer) {
		dp.log.Warn("set peer path", "device", deviceID, "err", err)
	}
	dp.log.Debug("path", "device", deviceID, "path", p.String())
	if dp.cfg.onPath != nil {
		dp.cfg.onPath(deviceID)
	}
}

// setPeers makes the tunnel and ICE follow the organization's device list.
func (dp *dataplane) setPeers(ctx context.Context, devices map[string]api.Device) {
	peers := make([]mesh.Peer, 0, len(devices))
	want := make(map[string]key.Key, len(devices))
	for id, d := range devices {
		p, err := MeshPeer(d)
		if err != nil {
			dp.log.Warn("ignoring peer with bad data", "device", id, "err", err)
			continue
		}
		peers = append(peers, p)
		want[id] = p.PublicKey
	}
	if err := dp.mesh.SetPeers(ctx, peers); err != nil && !errors.Is(err, net.ErrClosed) {
		dp.log.Error("configure peers", "err", err)
	}

	dp.mu.Lock()
	var added, removed []string
	for id, k := range want {
		if old, ok := dp.keys[id]; ok && old == k {
			continue
		} else if ok {
			removed = append(removed, id) // new key: a new ICE peer
		}
		added = append(added, id)
	}
	for id := range dp.keys {
		if _, ok := want[id]; !ok {
			removed = append(removed, id)
		}
	}
	for _, id := range removed {
		delete(dp.keys, id)
		delete(dp.paths, id)
		delete(dp.pathChanges, id)
	}
	for _, id := range added {
		dp.keys[id] = want[id]
	}
	// Pins survive SetPeers, so re-pinning the pairs ICE chose is only needed where the mesh has
	// no path for the peer. Re-pinning a pinned peer would do harm: it would take the peer
	// back from an address it roamed to (the mesh follows authenticated packets) to the pair
	// ICE selected before, which after a NAT mapping change is the stale one.
	unpinned := map[key.Key]bool{}
	for _, ps := range dp.mesh.Peers() {
		unpinned[ps.PublicKey] = !ps.Endpoint.IsValid() && !ps.Relayed
	}
	pins := map[key.Key]netip.AddrPort{}
	for id, p := range dp.paths {
		if k := dp.keys[id]; p.Valid() && !p.Relayed() && unpinned[k] {
			pins[k] = p.Remote
		}
	}
	dp.mu.Unlock()

	for _, id := range removed {
		dp.ice.RemovePeer(id)
	}
	// Before AddPeer, so that the first session knows whether the peer needs a relay.
	for id := range want {
		dp.ice.SetPeerSymmetric(id, devices[id].SymmetricNAT)
	}
	for _, id := range added {
		if err := dp.ice.AddPeer(id, want[id]); err != nil && !errors.Is(err, natt.ErrPeerExists) {
			dp.log.Warn("start ICE", "device", id, "err", err)
		}
	}
	for k, addr := range pins {
		dp.mesh.SetPeerPath(k, addr)
	}
}

func (dp *dataplane) handleSignal(from string, payload []byte) {
	if err := dp.ice.HandleSignal(from, payload); err != nil {
		dp.log.Debug("signal dropped", "from", from, "err", err)
	}
}

// setRelayOnly switches NAT traversal to relayed pairs only, or back; every session restarts.
func (dp *dataplane) setRelayOnly(on bool) {
	if err := dp.ice.SetRelayOnly(on); err != nil {
		dp.log.Warn("relay only", "err", err)
	}
}

// setTURN hands NAT traversal refreshed relay credentials.
func (dp *dataplane) setTURN(servers []natt.TURNServer) {
	if err := dp.ice.SetTURN(servers); err != nil {
		dp.log.Warn("relay servers", "err", err)
	}
}

// traversal returns each peer's ICE state, by device ID. One snapshot per peer gives its state
// and its pair together, so a status never shows "connected" without the pair.
func (dp *dataplane) traversal() map[string]natt.PathStatus {
	out := map[string]natt.PathStatus{}
	for _, ps := range dp.ice.Paths() {
		out[ps.PeerID] = ps
	}
	return out
}

func (dp *dataplane) natInfo() natt.NATInfo {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	return dp.nat
}

// close stops NAT traversal before the socket under it.
func (dp *dataplane) close() error {
	var errs []error
	dp.monMu.Lock()
	mon := dp.mon
	dp.monClosed = true
	dp.monMu.Unlock()
	if mon != nil {
		mon.Close()
	}
	if err := dp.ice.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, err)
	}
	dp.sock.Close()
	if err := dp.mesh.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// pathChangesOf returns how often the path to the device changed.
func (dp *dataplane) pathChangesOf(deviceID string) uint64 {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	return dp.pathChanges[deviceID]
}
