package nexodus

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/mesh"
)

// meshPeer turns a device record into what WireGuard needs: its key, the addresses it may
// send from (its tunnel IPs and the networks it routes) and where to send to.
func meshPeer(d api.Device) (mesh.Peer, error) {
	key, err := decodeKey(d.PublicKey)
	if err != nil {
		return mesh.Peer{}, err
	}
	p := mesh.Peer{PublicKey: key, Keepalive: keepalive}
	for _, s := range []string{d.TunnelIPv4, d.TunnelIPv6} {
		if s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return mesh.Peer{}, fmt.Errorf("tunnel address %q: %w", s, err)
		}
		p.AllowedIPs = append(p.AllowedIPs, netip.PrefixFrom(a, a.BitLen()))
	}
	for _, s := range d.ChildPrefixes {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return mesh.Peer{}, fmt.Errorf("child prefix %q: %w", s, err)
		}
		p.AllowedIPs = append(p.AllowedIPs, pfx.Masked())
	}
	for _, ep := range d.Endpoints {
		ap, err := netip.ParseAddrPort(ep.Address)
		if err != nil {
			continue // one bad endpoint must not cost the others
		}
		p.Endpoints = append(p.Endpoints, ap)
	}
	return p, nil
}

func peerFromDevice(d api.Device) Peer {
	p := Peer{
		DeviceID:  d.ID,
		Hostname:  d.Hostname,
		PublicKey: d.PublicKey,
		Online:    d.Online,
		Path:      PathNone,
	}
	p.TunnelIPv4, _ = netip.ParseAddr(d.TunnelIPv4)
	p.TunnelIPv6, _ = netip.ParseAddr(d.TunnelIPv6)
	for _, s := range d.ChildPrefixes {
		if pfx, err := netip.ParsePrefix(s); err == nil {
			p.ChildPrefixes = append(p.ChildPrefixes, pfx)
		}
	}
	for _, ep := range d.Endpoints {
		if ap, err := netip.ParseAddrPort(ep.Address); err == nil {
			p.Endpoints = append(p.Endpoints, ap)
		}
	}
	return p
}

// sameDevice reports whether two records of one device differ in anything a peer cares about.
func sameDevice(a, b api.Device) bool {
	return a.Hostname == b.Hostname && a.PublicKey == b.PublicKey &&
		a.TunnelIPv4 == b.TunnelIPv4 && a.TunnelIPv6 == b.TunnelIPv6 &&
		a.Online == b.Online && a.SymmetricNAT == b.SymmetricNAT &&
		slices.Equal(a.Endpoints, b.Endpoints) && slices.Equal(a.ChildPrefixes, b.ChildPrefixes)
}

func decodeKey(s string) ([32]byte, error) {
	var key [32]byte
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		return key, fmt.Errorf("public key %q is not base64 of 32 bytes", s)
	}
	copy(key[:], b)
	return key, nil
}

func sortPeers(ps []Peer) {
	slices.SortFunc(ps, func(a, b Peer) int {
		if c := strings.Compare(a.Hostname, b.Hostname); c != 0 {
			return c
		}
		return strings.Compare(a.DeviceID, b.DeviceID)
	})
}

func hostnameEqual(a, b string) bool {
	return b != "" && strings.EqualFold(strings.TrimSuffix(a, "."), b)
}

// validHostname accepts one DNS label: what peers type in Dial.
func validHostname(h string) bool {
	if h == "" || len(h) > api.MaxHostnameLength || h[0] == '-' || h[len(h)-1] == '-' {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// sanitizeHostname makes a DNS label of an OS hostname ("box.local" → "box").
func sanitizeHostname(h string) string {
	h, _, _ = strings.Cut(h, ".")
	var b strings.Builder
	for _, c := range strings.ToLower(h) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' {
			b.WriteRune(c)
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > api.MaxHostnameLength {
		s = s[:api.MaxHostnameLength]
	}
	if s == "" {
		s = "node"
	}
	return s
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

// publishedEndpoints is where the node tells peers to reach it: its public mapping (reflexive,
// when STUN found one), its interface addresses with its WireGuard port (the "host" candidates
// peers on the same network, or the same machine, reach directly), loopback last. At most
// api.MaxEndpoints: what is cut is loopback first, which only peers on this very machine use,
// never the reflexive address, which every peer behind another NAT needs.
func publishedEndpoints(addrs []netip.Addr, port uint16, reflexive netip.AddrPort) []api.Endpoint {
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
