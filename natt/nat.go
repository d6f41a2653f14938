// nat.go holds NAT type detection: the mapping behaviour of the NAT in front of the shared
// socket, told from what two or more STUN servers see at once.

package natt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// ErrNotEnoughServers: NAT type detection needs answers from two distinct servers.
var ErrNotEnoughServers = errors.New("natt: NAT detection needs answers from two distinct STUN servers")

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
		return info, fmt.Errorf("%w: %d distinct servers given", ErrNotEnoughServers, len(uniq))
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
		return info, fmt.Errorf("%w: %d of %d answered (first error: %w)",
			ErrNotEnoughServers, len(answered), len(uniq), firstErr)
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
