package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/natt"
)

// newDataplane brings up WireGuard and NAT traversal on the tunnel addresses of self, with the
// given STUN servers and relays. It reads nothing under e.mu, so that a rebuild need not
// hold it.
func (e *Engine) newDataplane(ctx context.Context, port uint16, self api.Device, stun []string, relay *api.RelayConfig) (*dataplane, error) {
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
	e.mu.RLock()
	forceRelay := e.cfg.ForceRelay
	e.mu.RUnlock()
	dp, err := newDataplane(ctx, dataplaneConfig{
		key:       e.key,
		addrs:     addrs,
		port:      port,
		stun:      stun,
		turn:      turnServers(relay),
		relayOnly: forceRelay,
		logger:    e.log,
		signal: func(ctx context.Context, deviceID string, payload []byte) error {
			return e.ctl.Signal(ctx, deviceID, payload)
		},
		onNAT:   func(natt.NATInfo) { e.requestPublish() },
		onMoved: e.reconnectControl,
		onPath:  e.cfg.OnPath,
	})
	if err != nil {
		return nil, fmt.Errorf("nexodus: %w", err)
	}
	return dp, nil
}

// readdress rebuilds the tunnel after the coordinator gave this device new addresses (it moved
// to another organization). Connections and listeners on the old addresses end.
//
// e.mu is not held across the slow part: closing the old data plane tells every ICE peer
// (up to a second) and must finish before the new mesh binds the same port. Meanwhile Snapshot,
// WhoIs and Dial answer from the closed data plane (Dial fails with net.ErrClosed) instead of
// waiting. Only apply, on the event stream's goroutine, replaces e.dp, so no other rebuild
// can interleave.
func (e *Engine) readdress(ctx context.Context) {
	e.mu.RLock()
	old, self, stun := e.dp, e.peers.Self, e.stun
	e.mu.RUnlock()
	port := old.mesh.LocalAddr().Port()
	old.close()
	if h := e.cfg.TestHookReaddress; h != nil {
		h()
	}
	relay := e.relay.Load()
	dp, err := e.newDataplane(ctx, port, self, stun, relay)
	if err != nil {
		// Keep the closed one in place: dials fail with net.ErrClosed until the next change.
		e.log.Error("rebuild tunnel after address change", "err", err)
		return
	}
	e.mu.Lock()
	e.dp = dp
	stunNow := e.stun
	e.mu.Unlock()
	// Relay servers that changed while the new data plane was built went to the old one.
	if cur := e.relay.Load(); cur != relay {
		dp.setTURN(turnServers(cur))
	}
	if !slices.Equal(stunNow, stun) {
		dp.setSTUN(stunNow)
	}
	e.log.Info("tunnel re-addressed", "ipv4", self.TunnelIPv4, "ipv6", self.TunnelIPv6)
	e.requestPublish()
}
