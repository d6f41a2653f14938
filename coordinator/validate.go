package coordinator

// Input rules: names, descriptions, hostnames, endpoints, prefixes, CIDRs, expiries and the
// resume header, each checked once and turned into a 400 with a message the client can act on.

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nexodus-sdk/nexodus/api"
)

const (
	maxDescriptionLength = 256
	// maxExpiresIn bounds every "expires_in_seconds" field (ten years).
	maxExpiresIn = 10 * 365 * 24 * time.Hour
)

// validName checks user and organization names: 1..api.MaxNameLength characters of
// [A-Za-z0-9._-], starting with a letter or digit.
func validName(what, s string) error {
	if s == "" {
		return errorf(ErrBadRequest, "%s is required", what)
	}
	if len(s) > api.MaxNameLength {
		return errorf(ErrBadRequest, "%s longer than %d characters", what, api.MaxNameLength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return errorf(ErrBadRequest, "%s must start with a letter or digit", what)
		}
		if !alnum && c != '-' && c != '_' && c != '.' {
			return errorf(ErrBadRequest, "%s may contain only letters, digits, '.', '_' and '-'", what)
		}
	}
	return nil
}

func validDescription(s string) error {
	if len(s) > maxDescriptionLength {
		return errorf(ErrBadRequest, "description longer than %d bytes", maxDescriptionLength)
	}
	if !utf8.ValidString(s) {
		return errorf(ErrBadRequest, "description is not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return errorf(ErrBadRequest, "description contains control characters")
		}
	}
	return nil
}

// validHostname checks an RFC 1123 label: 1..63 letters, digits and hyphens, neither starting
// nor ending with a hyphen.
func validHostname(s string) error {
	if s == "" {
		return errorf(ErrBadRequest, "hostname is required")
	}
	if len(s) > api.MaxHostnameLength {
		return errorf(ErrBadRequest, "hostname longer than %d characters", api.MaxHostnameLength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
		if !ok {
			return errorf(ErrBadRequest, "hostname must be a single DNS label of letters, digits and '-'")
		}
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return errorf(ErrBadRequest, "hostname must not start or end with '-'")
	}
	return nil
}

// parseEndpoints validates and normalizes device endpoints.
func parseEndpoints(eps []api.Endpoint) ([]api.Endpoint, error) {
	if len(eps) > api.MaxEndpoints {
		return nil, errorf(ErrBadRequest, "more than %d endpoints", api.MaxEndpoints)
	}
	out := make([]api.Endpoint, 0, len(eps))
	seen := make(map[api.Endpoint]bool, len(eps))
	for _, ep := range eps {
		if ep.Source != api.EndpointLocal && ep.Source != api.EndpointReflexive {
			return nil, errorf(ErrBadRequest, "endpoint source must be %q or %q", api.EndpointLocal, api.EndpointReflexive)
		}
		ap, err := parseAddrPort(ep.Address)
		if err != nil {
			return nil, err
		}
		n := api.Endpoint{Source: ep.Source, Address: ap.String()}
		if seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	return out, nil
}

func parseAddrPort(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ap, errorf(ErrBadRequest, "endpoint address must be ip:port or [ipv6]:port")
	}
	a := ap.Addr()
	if a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() || ap.Port() == 0 {
		return ap, errorf(ErrBadRequest, "endpoint address %s is not a usable unicast address and port", s)
	}
	return netip.AddrPortFrom(a.Unmap(), ap.Port()), nil
}

// parseChildPrefixes validates advertised child prefixes: canonical (masked) prefixes, not
// overlapping the organization's own address ranges.
func parseChildPrefixes(ps []string, org4, org6 netip.Prefix) ([]string, error) {
	if len(ps) > api.MaxChildPrefixes {
		return nil, errorf(ErrBadRequest, "more than %d child prefixes", api.MaxChildPrefixes)
	}
	out := make([]string, 0, len(ps))
	seen := make(map[netip.Prefix]bool, len(ps))
	for _, s := range ps {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return nil, errorf(ErrBadRequest, "child prefix %q is not a CIDR prefix", truncate(s, 64))
		}
		if p != p.Masked() {
			return nil, errorf(ErrBadRequest, "child prefix %s has host bits set (did you mean %s?)", p, p.Masked())
		}
		if p.Addr().Is4In6() {
			return nil, errorf(ErrBadRequest, "child prefix %s: use the IPv4 form", p)
		}
		if (org4.IsValid() && p.Overlaps(org4)) || (org6.IsValid() && p.Overlaps(org6)) {
			return nil, errorf(ErrBadRequest, "child prefix %s overlaps the organization's tunnel addresses", p)
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p.String())
	}
	return out, nil
}

// parseOrgCIDR validates a requested organization IPv4 CIDR.
func parseOrgCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return p, errorf(ErrBadRequest, "ipv4_cidr must be an IPv4 CIDR prefix such as 10.1.0.0/16")
	}
	if p != p.Masked() {
		return p, errorf(ErrBadRequest, "ipv4_cidr %s has host bits set (did you mean %s?)", p, p.Masked())
	}
	if p.Bits() < 8 || p.Bits() > 30 {
		return p, errorf(ErrBadRequest, "ipv4_cidr must be between /8 and /30")
	}
	return p, nil
}

// parseExpiresIn turns an "expires_in_seconds" value into a duration; 0 means def.
func parseExpiresIn(secs int64, def time.Duration) (time.Duration, error) {
	if secs < 0 {
		return 0, errorf(ErrBadRequest, "expires_in_seconds must not be negative")
	}
	if secs == 0 {
		return def, nil
	}
	if secs > int64(maxExpiresIn/time.Second) {
		return 0, errorf(ErrBadRequest, "expires_in_seconds must be at most %d", int64(maxExpiresIn/time.Second))
	}
	return time.Duration(secs) * time.Second, nil
}

// parseLastEventID reads the SSE resume header: empty means a fresh stream.
func parseLastEventID(s string) (rev int64, resume bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false, errorf(ErrBadRequest, "Last-Event-ID must be a non-negative revision number")
	}
	return n, true, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
