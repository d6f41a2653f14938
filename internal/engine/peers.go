package engine

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/key"
	"github.com/nexodus-sdk/nexodus/mesh"
)

// MeshPeer turns a device record into what WireGuard needs: its key, the addresses it may
// send from (its tunnel IPs and the networks it routes) and where to send to.
func MeshPeer(d api.Device) (mesh.Peer, error) {
	k, err := key.Parse(d.PublicKey)
	if err != nil {
		return mesh.Peer{}, fmt.Errorf("public key %q: %w", d.PublicKey, err)
	}
	p := mesh.Peer{PublicKey: k, Keepalive: keepalive}
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

// Device is a device record as the facade shows it: addresses parsed, unparsable ones left out.
type Device struct {
	ID             string
	OrganizationID string
	Hostname       string
	PublicKey      string
	TunnelIPv4     netip.Addr
	TunnelIPv6     netip.Addr
	ChildPrefixes  []netip.Prefix
	Endpoints      []netip.AddrPort
	Online         bool
}

// ParseDevice parses a device record from the coordinator for the facade.
func ParseDevice(d api.Device) Device {
	out := Device{ID: d.ID, OrganizationID: d.OrganizationID, Hostname: d.Hostname, PublicKey: d.PublicKey, Online: d.Online}
	out.TunnelIPv4, _ = netip.ParseAddr(d.TunnelIPv4)
	out.TunnelIPv6, _ = netip.ParseAddr(d.TunnelIPv6)
	for _, s := range d.ChildPrefixes {
		if pfx, err := netip.ParsePrefix(s); err == nil {
			out.ChildPrefixes = append(out.ChildPrefixes, pfx)
		}
	}
	for _, ep := range d.Endpoints {
		if ap, err := netip.ParseAddrPort(ep.Address); err == nil {
			out.Endpoints = append(out.Endpoints, ap)
		}
	}
	return out
}

// ValidHostname accepts one DNS label: what peers type in Dial.
func ValidHostname(h string) bool {
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

// SanitizeHostname makes a DNS label of an OS hostname ("box.local" → "box").
func SanitizeHostname(h string) string {
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
