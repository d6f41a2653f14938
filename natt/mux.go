// mux.go holds pion's UDP mux over the shared socket and the filter that picks host candidates.

package natt

import (
	"net"
	"net/netip"

	"github.com/pion/ice/v4"
)

// hostFilter decides which local addresses become host candidates.
type hostFilter struct {
	includeLoopback bool
	ipv6            bool
	iface           func(name string) bool
	ip              func(netip.Addr) bool
}

func (f hostFilter) keepAddr(a netip.Addr) bool {
	a = a.Unmap()
	switch {
	case !a.IsValid() || a.IsUnspecified() || a.IsMulticast():
		return false
	case a.IsLinkLocalUnicast(): // unusable without a zone, and not routed anyway
		return false
	case a.IsLoopback() && !f.includeLoopback:
		return false
	case a.Is6() && !f.ipv6:
		return false
	case f.ip != nil && !f.ip(a):
		return false
	}
	return true
}

// listenAddrs returns the addresses host candidates are made from: the socket's own address if
// it is bound to one, otherwise every usable address of every interface that passes the filter.
func (f hostFilter) listenAddrs(local netip.AddrPort) []net.Addr {
	if !local.Addr().IsUnspecified() {
		if f.keepAddr(local.Addr()) {
			return []net.Addr{net.UDPAddrFromAddrPort(canonical(local))}
		}
		return nil
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	v4only := local.Addr().Is4()
	var out []net.Addr
	for _, ifi := range ifaces {
		if ifi.Flags&net.FlagUp == 0 {
			continue
		}
		if ifi.Flags&net.FlagLoopback != 0 && !f.includeLoopback {
			continue
		}
		if f.iface != nil && !f.iface(ifi.Name) {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if (v4only && !ip.Is4()) || !f.keepAddr(ip) {
				continue
			}
			out = append(out, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, local.Port())))
		}
	}
	return out
}

// iceMux is pion's universal UDP mux over the shared socket, with host-candidate addresses chosen
// by this package's filter instead of pion's (which, for a socket bound to an unspecified
// address, offers every interface including loopback and ignores the agents' filters).
type iceMux struct {
	*ice.UniversalUDPMuxDefault
	local  netip.AddrPort
	filter hostFilter
}

var _ ice.UniversalUDPMux = (*iceMux)(nil)

func (m *iceMux) GetListenAddresses() []net.Addr { return m.filter.listenAddrs(m.local) }
