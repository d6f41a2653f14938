package engine

import (
	"context"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
)

// streamMaxBackoff caps the wait between reconnections of the event stream.
const streamMaxBackoff = 4 * time.Second

// openStream opens the device's event stream; its connection state shows in Snapshot.
func (e *Engine) openStream() *client.EventStream {
	stream := e.ctl.WatchDevice(e.ctx, e.selfID(), client.WatchOptions{
		// A node is back within a few seconds of a coordinator's return: the jittered wait
		// (between half and all of it) spreads a crowd of nodes over those seconds.
		MaxBackoff: streamMaxBackoff,
		OnState: func(connected bool, err error) {
			e.mu.Lock()
			e.connected = connected
			e.mu.Unlock()
			if err != nil && !connected {
				e.log.Warn("control stream down", "err", err)
			}
		},
	})
	e.stream.Store(stream)
	return stream
}

// follow applies the event stream until the engine closes.
func (e *Engine) follow(stream *client.EventStream) {
	defer e.wg.Done()
	defer stream.Close()
	for {
		ev, err := stream.Next(e.ctx)
		if err != nil {
			if e.ctx.Err() == nil {
				// The stream gave up for good: the coordinator answered a reconnect with a
				// 4xx (the device or its organization is gone, or the token is refused).
				e.log.Debug("control stream ended", "err", err)
				e.cutOff(cutOffReason(err))
			}
			return
		}
		e.apply(e.ctx, ev)
	}
}

// apply handles one event: device events fold into the peer map, which then drives the tunnel;
// signals go to NAT traversal; relay configurations to the relay settings.
func (e *Engine) apply(ctx context.Context, ev api.Event) {
	switch {
	case ev.Type == api.EventSignal && ev.Signal != nil:
		e.dataplane().handleSignal(ev.Signal.From, ev.Signal.Payload)
	case ev.Type == api.EventRelay && ev.Relay != nil:
		e.setRelay(ev.Relay, true)
	case IsPeerEvent(ev.Type):
		e.mu.Lock()
		next, delta := e.peers.Apply(ev)
		if next.Removed && !e.peers.Removed {
			e.mu.Unlock()
			reason := ErrDeviceRemoved
			if r, ok := reasonErrors[ev.Reason]; ok {
				reason = r // a device.removed may say why (e.g. with its user)
			}
			e.cutOff(reason)
			return
		}
		e.peers = next
		e.mu.Unlock()
		if delta.Moved {
			e.readdress(ctx)
		}
		e.mu.RLock()
		dp, peers := e.dp, next.Peers
		e.mu.RUnlock()
		dp.setPeers(ctx, peers)
		if fn := e.cfg.OnPeers; fn != nil && len(delta.Peers) > 0 {
			fn(delta.Peers)
		}
	}
}

// reconnectControl replaces the node's connections to the coordinator after its public address
// changed. A NAT that lost its mapping drops the coordinator's packets to the old one: the
// event stream (which brings peer updates and ICE signaling) would stay silent until its idle
// timeout or a TCP keepalive noticed, tens of seconds, and a request on a pooled connection
// would be reset.
func (e *Engine) reconnectControl() {
	e.log.Info("public address changed; reconnecting to the coordinator")
	e.base.CloseIdleConnections()
	if s := e.stream.Load(); s != nil {
		s.Reconnect()
	}
}
