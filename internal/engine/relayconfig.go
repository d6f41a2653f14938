package engine

import (
	"context"
	"slices"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/natt"
)

// relayConfig fetches the STUN and TURN servers the coordinator offers this device (keeping
// them for refreshRelay) and returns the STUN servers to use: the Node's own list if it has one.
func (e *Engine) relayConfig(ctx context.Context) []string {
	rc, err := e.ctl.RelayConfig(ctx, e.peers.Self.ID)
	if err != nil {
		// An older coordinator or a passing failure: run without (host candidates and
		// peer-reflexive discovery still work) rather than refuse to start.
		e.log.Warn("no STUN/TURN servers from the coordinator", "err", err)
		rc = &api.RelayConfig{}
	}
	e.relay.Store(rc)
	if len(e.cfg.STUNServers) > 0 {
		return e.cfg.STUNServers
	}
	return rc.STUN
}

// refreshRelay is the fallback for fresh TURN credentials: the coordinator pushes them on the
// event stream (api.EventRelay) at half their lifetime, so this fetches them only when three
// quarters of the remaining life have passed without a push (the stream was down).
func (e *Engine) refreshRelay() {
	defer e.wg.Done()
	retry := 5 * time.Second
	for {
		rc := e.relay.Load()
		wait := time.Hour
		if !rc.ExpiresAt.IsZero() {
			wait = max(time.Until(rc.ExpiresAt)*3/4, retry)
		}
		t := time.NewTimer(wait)
		select {
		case <-e.ctx.Done():
			t.Stop()
			return
		case <-e.relayed:
			t.Stop()
			continue // a push arrived: count from its credentials
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
		fresh, err := e.ctl.RelayConfig(ctx, e.selfID())
		cancel()
		if err != nil {
			e.log.Warn("refresh relay credentials", "err", err)
			continue
		}
		e.setRelay(fresh, false)
	}
}

// setRelay hands new relay servers and credentials to NAT traversal. Handing them over restarts
// ICE on relayed paths (their allocations need the new credentials), so a pushed configuration
// that only renews credentials the node holds with more than three quarters of the new ones'
// life left is not applied: the push right after every stream (re)connection would otherwise
// disturb relayed paths for nothing. The coordinator pushes again at half the lifetime.
func (e *Engine) setRelay(fresh *api.RelayConfig, pushed bool) {
	cur := e.relay.Load()
	if pushed && sameRelayServers(cur, fresh) &&
		(fresh.Username == "" || cur.Username != "" && time.Until(cur.ExpiresAt) > time.Until(fresh.ExpiresAt)*3/4) {
		return
	}
	e.relay.Store(fresh)
	e.mu.Lock()
	ownSTUN := len(e.cfg.STUNServers) > 0 // the Node's own list wins over the coordinator's
	if !ownSTUN {
		e.stun = fresh.STUN
	}
	dp := e.dp
	e.mu.Unlock()
	if dp != nil {
		if !ownSTUN {
			dp.setSTUN(fresh.STUN)
		}
		dp.setTURN(turnServers(fresh))
	}
	if pushed {
		e.log.Info("relay servers updated by the coordinator", "turn", fresh.TURN, "expires", fresh.ExpiresAt)
	}
	select {
	case e.relayed <- struct{}{}:
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
