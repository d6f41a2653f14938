// servers.go holds the STUN and TURN server lists: parsing the URLs the coordinator hands out
// (network input) and resolving STUN server names to addresses.

package natt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/pion/stun/v4"
)

// TURNServer is a TURN relay and the credentials to use it.
type TURNServer struct {
	// URL is "turn:host:port?transport=udp", "turn:host:port?transport=tcp" (for hosts whose
	// network drops UDP) or "turns:host:port?transport=tcp" (TLS). Without transport, turn:
	// means UDP and turns: TCP.
	URL                string
	Username, Password string
}

// parseURI is stun.ParseURI made safe for input from the network (the coordinator's server
// lists). pion adds a default port to a host part without one and parses again; for a host part
// that still lacks a port once one is added (e.g. "stun:[1]2") it recurses until the stack
// overflows, which kills the process. Such URIs are refused here first.
func parseURI(raw string) (*stun.URI, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	var ae *net.AddrError
	if _, _, err := net.SplitHostPort(u.Opaque); errors.As(err, &ae) && ae.Err == "missing port in address" {
		if _, _, err := net.SplitHostPort(u.Opaque + ":1"); errors.As(err, &ae) && ae.Err == "missing port in address" {
			return nil, fmt.Errorf("host %q: %w", u.Opaque, err)
		}
	}
	return stun.ParseURI(raw)
}

// parseSTUN validates "host:port" STUN servers and turns them into pion URIs.
func parseSTUN(servers []string) ([]*stun.URI, error) {
	urls := make([]*stun.URI, 0, len(servers))
	for _, s := range servers {
		raw := s
		if !strings.HasPrefix(raw, "stun:") {
			raw = "stun:" + raw
		}
		u, err := parseURI(raw)
		if err != nil {
			return nil, fmt.Errorf("natt: STUN server %q: %w", s, err)
		}
		urls = append(urls, u)
	}
	return urls, nil
}

// parseTURN validates TURN servers and turns them into pion URIs.
func parseTURN(servers []TURNServer) ([]*stun.URI, error) {
	out := make([]*stun.URI, 0, len(servers))
	for _, s := range servers {
		u, err := parseURI(s.URL)
		if err != nil {
			return nil, fmt.Errorf("natt: TURN server %q: %w", s.URL, err)
		}
		if u.Scheme != stun.SchemeTypeTURN && u.Scheme != stun.SchemeTypeTURNS {
			return nil, fmt.Errorf("natt: TURN server %q: not a turn: or turns: URL", s.URL)
		}
		if s.Username == "" || s.Password == "" {
			return nil, fmt.Errorf("natt: TURN server %q: username and password are required", s.URL)
		}
		u.Username, u.Password = s.Username, s.Password
		out = append(out, u)
	}
	return out, nil
}

// ResolveServers resolves "host:port" STUN server names (as in Config.STUNServers) to
// addresses for Discover, DetectNAT and a Monitor, with r (nil: net.DefaultResolver). IPv4
// addresses come first, as the data plane's candidates are IPv4 by default; names that do not
// resolve are skipped, and an error is returned only if none resolves.
func ResolveServers(ctx context.Context, r *net.Resolver, hostports []string) ([]netip.AddrPort, error) {
	if r == nil {
		r = net.DefaultResolver
	}
	var v4, v6 []netip.AddrPort
	var firstErr error
	for _, hp := range hostports {
		addrs, err := resolveServer(ctx, r, hp)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("natt: resolve STUN server %q: %w", hp, err)
			}
			continue
		}
		for _, ap := range addrs {
			if ap.Addr().Is4() {
				v4 = append(v4, ap)
			} else {
				v6 = append(v6, ap)
			}
		}
	}
	out := append(v4, v6...)
	if len(out) == 0 {
		if firstErr == nil {
			firstErr = errors.New("natt: no STUN servers given")
		}
		return nil, firstErr
	}
	return out, nil
}

// resolveServer resolves one "host:port" (or "stun:host:port") server.
func resolveServer(ctx context.Context, r *net.Resolver, hostport string) ([]netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(strings.TrimPrefix(hostport, "stun:"))
	if err != nil {
		return nil, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return nil, fmt.Errorf("bad port %q", port)
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(p)))
	}
	return out, nil
}
