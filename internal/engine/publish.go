package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/natt"
)

// requestPublish asks the publisher to send the node's endpoints again (coalescing).
func (e *Engine) requestPublish() {
	select {
	case e.publish <- struct{}{}:
	default:
	}
}

// publisher sends the node's endpoints whenever they change, retrying with backoff.
func (e *Engine) publisher() {
	defer e.wg.Done()
	backoff := time.Second
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.publish:
		}
		for {
			ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
			err := e.publishEndpoints(ctx)
			cancel()
			if err == nil || e.ctx.Err() != nil {
				backoff = time.Second
				break
			}
			e.log.Warn("publish endpoints", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-e.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}
}

// publishEndpoints tells the coordinator where this node can be reached: its interface
// addresses and, once STUN has answered, its public mapping, and whether its NAT is symmetric.
func (e *Engine) publishEndpoints(ctx context.Context) error {
	e.mu.RLock()
	dp, self := e.dp, e.peers.Self
	e.mu.RUnlock()
	nat := dp.natInfo()
	eps := PublishedEndpoints(interfaceAddrs(), dp.mesh.LocalAddr().Port(), nat.Reflexive)
	symmetric := nat.Type == natt.NATSymmetric
	upd := api.UpdateDeviceRequest{Endpoints: &eps, SymmetricNAT: &symmetric}
	fresh, err := e.ctl.UpdateDevice(ctx, self.ID, upd)
	if err != nil {
		return fmt.Errorf("nexodus: publish endpoints: %w", err)
	}
	e.mu.Lock()
	e.peers.Self = *fresh
	e.mu.Unlock()
	return nil
}

// interfaceAddrs lists the host's interface addresses that peers could dial: link-local ones
// need a zone peers cannot know.
func interfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr().Unmap()
		if ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
			continue
		}
		out = append(out, ip)
	}
	return out
}

// PublishedEndpoints is where the node tells peers to reach it: its public mapping (reflexive,
// when STUN found one), its interface addresses with its WireGuard port (the "host" candidates
// peers on the same network, or the same machine, reach directly), loopback last. At most
// api.MaxEndpoints: what is cut is loopback first, which only peers on this very machine use,
// never the reflexive address, which every peer behind another NAT needs.
func PublishedEndpoints(addrs []netip.Addr, port uint16, reflexive netip.AddrPort) []api.Endpoint {
	var eps []api.Endpoint
	if reflexive.IsValid() {
		eps = append(eps, api.Endpoint{Source: api.EndpointReflexive, Address: reflexive.String()})
	}
	for _, loopback := range []bool{false, true} {
		for _, ip := range addrs {
			if ip.IsLoopback() != loopback || len(eps) == api.MaxEndpoints {
				continue
			}
			eps = append(eps, api.Endpoint{Source: api.EndpointLocal, Address: netip.AddrPortFrom(ip, port).String()})
		}
	}
	return eps
}
