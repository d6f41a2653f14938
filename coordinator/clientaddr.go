package coordinator

// The source address of a request, which the per-address rate limit counts: the TCP peer, or
// behind a trusted reverse proxy the client that proxy names in X-Forwarded-For.

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// clientAddr is the address r came from: its TCP peer, unless the peer is one of
// Config.TrustedProxies, in which case it is the right-most address of X-Forwarded-For that is
// not a trusted proxy (each proxy appends the address it got the request from, so everything
// left of the first untrusted hop may be forged by the client). The zero Addr when the peer
// is not an IP address (a Unix socket, an in-memory listener): such peers share one source.
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	peer := parseHostAddr(r.RemoteAddr)
	if !peer.IsValid() || !s.trustedProxy(peer) {
		return peer
	}
	return forwardedFor(peer, r.Header.Values("X-Forwarded-For"), s.trustedProxy)
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	return slices.ContainsFunc(s.cfg.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(a) })
}

// forwardedFor walks the X-Forwarded-For values (each a comma-separated list, later headers
// appended by nearer proxies) from the right, starting from the trusted peer, and returns the
// first address that is not trusted. A malformed entry ends the walk at the last address read
// (it was written by nobody we trust); when every hop is trusted, the left-most one is the
// client.
func forwardedFor(peer netip.Addr, values []string, trusted func(netip.Addr) bool) netip.Addr {
	cur := peer
	for i := len(values) - 1; i >= 0; i-- {
		rest := values[i]
		for {
			var entry string
			j := strings.LastIndexByte(rest, ',')
			entry, rest = rest[j+1:], rest[:max(j, 0)]
			a := parseHostAddr(strings.TrimSpace(entry))
			if !a.IsValid() {
				return cur
			}
			if cur = a; !trusted(a) {
				return a
			}
			if j < 0 {
				break
			}
		}
	}
	return cur
}

// parseHostAddr parses "ip", "ip:port", "[ip]" or "[ip]:port", dropping any zone and with
// IPv4 in its 4-byte form; the zero Addr for anything else.
func parseHostAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().WithZone("").Unmap()
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.WithZone("").Unmap()
}

// sourceKey is the bucket of a source address: the address itself for IPv4, its /64 for IPv6
// (one subscriber's usual allocation, which an attacker can draw addresses from at will), and
// the zero Prefix for a peer without an IP address.
func sourceKey(a netip.Addr) netip.Prefix {
	switch {
	case !a.IsValid():
		return netip.Prefix{}
	case a.Is4():
		return netip.PrefixFrom(a, 32)
	default:
		p, _ := a.Prefix(64)
		return p
	}
}
