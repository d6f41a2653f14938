package natt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/stun/v4"
)

// Sentinel errors of the STUN client.
var (
	// ErrSTUNTimeout: the server did not answer any of the retransmitted requests.
	ErrSTUNTimeout = errors.New("natt: STUN server did not answer")
	// ErrSTUNErrorResponse: the server answered with a Binding error response.
	ErrSTUNErrorResponse = errors.New("natt: STUN error response")
	// ErrBadSTUNResponse: a response carried our transaction ID but could not be used.
	ErrBadSTUNResponse = errors.New("natt: malformed STUN response")
	// ErrNotEnoughServers: NAT type detection needs answers from two distinct servers.
	ErrNotEnoughServers = errors.New("natt: NAT detection needs answers from two distinct STUN servers")
)

// RFC 5389 section 7.2.1 retransmission: an initial RTO of 500 ms, doubled after each of
// Rc = 7 requests, and a final wait of Rm = 16 RTOs after the last one.
const (
	stunRTO = 500 * time.Millisecond
	stunRc  = 7
	stunRm  = 16
)

// Discover sends a STUN Binding request to server over sock (so over the data plane's socket and
// its NAT mapping) and returns the server-reflexive address: this socket's address as the server
// saw it. Requests are retransmitted per RFC 5389 until an answer, the context's end, or the
// retransmission schedule's end (about 39.5 s; ErrSTUNTimeout). The response arrives through
// sock.Deliver and is matched by transaction ID and source address.
func Discover(ctx context.Context, sock *Socket, server netip.AddrPort) (netip.AddrPort, error) {
	return discover(ctx, sock, server, stunRTO)
}

func discover(ctx context.Context, sock *Socket, server netip.AddrPort, rto time.Duration) (netip.AddrPort, error) {
	server = canonical(server)
	if !server.IsValid() {
		return netip.AddrPort{}, fmt.Errorf("natt: STUN discover: invalid server address %v", server)
	}
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("natt: STUN discover via %v: build request: %w", server, err)
	}
	// Room for a few responses: retransmitted requests get duplicate answers, and a forged
	// packet must not crowd out the real one.
	ch := make(chan datagram, 8)
	unregister := sock.register(req.TransactionID, ch)
	defer unregister()

	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	sent, send := 0, true
	var lastErr error
	for {
		if send {
			if _, err := sock.WriteToAddrPort(req.Raw, server); err != nil {
				return netip.AddrPort{}, fmt.Errorf("natt: STUN discover via %v: %w", server, err)
			}
			sent++
			wait := rto << (sent - 1)
			if sent == stunRc {
				wait = rto * stunRm
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			send = false
		}
		select {
		case <-ctx.Done():
			return netip.AddrPort{}, fmt.Errorf("natt: STUN discover via %v: %w", server, ctx.Err())
		case <-sock.closed:
			return netip.AddrPort{}, fmt.Errorf("natt: STUN discover via %v: %w", server, net.ErrClosed)
		case d := <-ch:
			if d.from != server {
				continue // not from the server we asked: ignore, keep waiting
			}
			addr, err := parseBindingResponse(d.b, req.TransactionID)
			switch {
			case err == nil:
				return addr, nil
			case errors.Is(err, ErrSTUNErrorResponse):
				return netip.AddrPort{}, fmt.Errorf("natt: STUN discover via %v: %w", server, err)
			default:
				// A garbled or forged packet must not end discovery: keep waiting for the real one.
				lastErr = err
			}
		case <-timer.C:
			if sent >= stunRc {
				if lastErr != nil {
					return netip.AddrPort{}, fmt.Errorf("natt: STUN discover via %v: %w (last bad response: %w)", server, ErrSTUNTimeout, lastErr)
				}
				return netip.AddrPort{}, fmt.Errorf("natt: STUN discover via %v: %w", server, ErrSTUNTimeout)
			}
			send = true
		}
	}
}

// parseBindingResponse validates a Binding response to transaction id and returns the mapped
// address it carries (XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from older servers).
func parseBindingResponse(b []byte, id [stun.TransactionIDSize]byte) (netip.AddrPort, error) {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrBadSTUNResponse, err)
	}
	if m.TransactionID != id {
		return netip.AddrPort{}, fmt.Errorf("%w: transaction ID mismatch", ErrBadSTUNResponse)
	}
	if m.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.Check(m); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrBadSTUNResponse, err)
		}
	}
	switch m.Type {
	case stun.BindingSuccess:
	case stun.BindingError:
		var code stun.ErrorCodeAttribute
		if err := code.GetFrom(m); err == nil {
			return netip.AddrPort{}, fmt.Errorf("%w: %d %s", ErrSTUNErrorResponse, code.Code, code.Reason)
		}
		return netip.AddrPort{}, ErrSTUNErrorResponse
	default:
		return netip.AddrPort{}, fmt.Errorf("%w: unexpected message type %v", ErrBadSTUNResponse, m.Type)
	}
	var ip net.IP
	var port int
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(m); err == nil {
		ip, port = xor.IP, xor.Port
	} else {
		var mapped stun.MappedAddress
		if err := mapped.GetFrom(m); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: no mapped address", ErrBadSTUNResponse)
		}
		ip, port = mapped.IP, mapped.Port
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok || port <= 0 || port > 65535 || addr.IsUnspecified() {
		return netip.AddrPort{}, fmt.Errorf("%w: bad mapped address %v:%d", ErrBadSTUNResponse, ip, port)
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

// NATType classifies the NAT in front of a socket by its mapping behaviour (RFC 4787).
type NATType int

const (
	// NATUnknown: not determined (fewer than two servers answered).
	NATUnknown NATType = iota
	// NATNone: the socket's address is public; there is no NAT.
	NATNone
	// NATEndpointIndependent: one mapping for every destination (full, restricted or
	// port-restricted cone). Direct connections work via server-reflexive candidates.
	NATEndpointIndependent
	// NATSymmetric: the mapping changes with the destination (address- or
	// address-and-port-dependent mapping). The server-reflexive address is useless to peers;
	// a direct path needs the other side to be reachable, otherwise a relay.
	NATSymmetric
)

func (t NATType) String() string {
	switch t {
	case NATNone:
		return "none"
	case NATEndpointIndependent:
		return "endpoint-independent"
	case NATSymmetric:
		return "symmetric"
	default:
		return "unknown"
	}
}

// Symmetric reports whether the NAT is symmetric (what the coordinator's device record calls
// the symmetric-NAT flag).
func (t NATType) Symmetric() bool { return t == NATSymmetric }

// Mapping is one STUN server's view of the socket.
type Mapping struct {
	Server    netip.AddrPort
	Reflexive netip.AddrPort // zero if the server did not answer
	Err       error          // why it did not
}

// NATInfo is the result of NAT type detection.
type NATInfo struct {
	Type NATType
	// Reflexive is the socket's public address as the first answering server saw it (for a
	// symmetric NAT it differs per destination and is of little use).
	Reflexive netip.AddrPort
	Local     netip.AddrPort // the socket's local address
	Mappings  []Mapping      // per server, in the order given
	Checked   time.Time
}

// Equal reports whether two results describe the same situation: same type and same public
// address (the time and the per-server details are ignored).
func (i NATInfo) Equal(o NATInfo) bool {
	return i.Type == o.Type && i.Reflexive == o.Reflexive
}

// DetectNAT classifies the NAT in front of sock by querying every server in servers at once
// (at least two, differing in address or port). If the servers see different mappings the NAT
// is symmetric; if they all see the same one it is endpoint-independent, or no NAT at all when
// that mapping is one of the socket's local addresses. With fewer than two answers the result
// has Type NATUnknown (and Reflexive, when one server answered) and the error wraps
// ErrNotEnoughServers.
func DetectNAT(ctx context.Context, sock *Socket, servers []netip.AddrPort) (NATInfo, error) {
	return detectNAT(ctx, sock, servers, stunRTO, localAddrs)
}

func detectNAT(ctx context.Context, sock *Socket, servers []netip.AddrPort, rto time.Duration,
	locals func() []netip.Addr) (NATInfo, error) {
	info := NATInfo{Local: sock.LocalAddrPort(), Checked: time.Now()}
	uniq := make([]netip.AddrPort, 0, len(servers))
	for _, s := range servers {
		s = canonical(s)
		if s.IsValid() && !slices.Contains(uniq, s) {
			uniq = append(uniq, s)
		}
	}
	if len(uniq) < 2 {
		return info, fmt.Errorf("natt: detect NAT: %d distinct servers given: %w", len(uniq), ErrNotEnoughServers)
	}
	info.Mappings = make([]Mapping, len(uniq))
	var wg sync.WaitGroup
	for i, s := range uniq {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := discover(ctx, sock, s, rto)
			info.Mappings[i] = Mapping{Server: s, Reflexive: r, Err: err}
		}()
	}
	wg.Wait()

	var answered []netip.AddrPort
	var firstErr error
	for _, m := range info.Mappings {
		if m.Err != nil {
			if firstErr == nil {
				firstErr = m.Err
			}
			continue
		}
		answered = append(answered, m.Reflexive)
	}
	if len(answered) > 0 {
		info.Reflexive = answered[0]
	}
	if len(answered) < 2 {
		return info, fmt.Errorf("natt: detect NAT: %d of %d servers answered: %w (%w)",
			len(answered), len(uniq), ErrNotEnoughServers, firstErr)
	}
	for _, r := range answered[1:] {
		if r != answered[0] {
			info.Type = NATSymmetric
			return info, nil
		}
	}
	info.Type = NATEndpointIndependent
	if isLocal(answered[0], info.Local, locals) {
		info.Type = NATNone
	}
	return info, nil
}

// isLocal reports whether reflexive is the socket's own address: the same port and either the
// socket's bound address or, for a socket bound to an unspecified address, one of the host's.
func isLocal(reflexive, local netip.AddrPort, locals func() []netip.Addr) bool {
	if reflexive.Port() != local.Port() {
		return false
	}
	if !local.Addr().IsUnspecified() {
		return reflexive.Addr() == local.Addr().Unmap()
	}
	return slices.Contains(locals(), reflexive.Addr())
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
		host, port, err := net.SplitHostPort(strings.TrimPrefix(hp, "stun:"))
		if err == nil {
			var p uint16
			if p, err = parsePort(port); err == nil {
				var ips []netip.Addr
				if ips, err = r.LookupNetIP(ctx, "ip", host); err == nil {
					for _, ip := range ips {
						ap := netip.AddrPortFrom(ip.Unmap(), p)
						if ap.Addr().Is4() {
							v4 = append(v4, ap)
						} else {
							v6 = append(v6, ap)
						}
					}
				}
			}
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("natt: resolve STUN server %q: %w", hp, err)
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

func parsePort(s string) (uint16, error) {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(p), nil
}

// localAddrs lists the host's interface addresses.
func localAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if p, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(p.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}
