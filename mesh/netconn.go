package mesh

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
)

// parseHostPort splits "host:port" where host is empty, an IP literal or (for listening) an
// unspecified address. Host names are not resolved: the mesh has no DNS of its own, callers map
// names to tunnel addresses.
func parseHostPort(address string) (netip.Addr, uint16, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("invalid port %q", port)
	}
	if host == "" {
		return netip.Addr{}, uint16(p), nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("host %q is not an IP address", host)
	}
	if a.Zone() != "" {
		return netip.Addr{}, 0, fmt.Errorf("zoned address %q not supported", host)
	}
	return a.Unmap(), uint16(p), nil
}

// family checks network and returns 4, 6 or 0 (either) and whether it is TCP.
func family(network string) (fam int, tcp bool, err error) {
	switch network {
	case "tcp":
		return 0, true, nil
	case "tcp4":
		return 4, true, nil
	case "tcp6":
		return 6, true, nil
	case "udp":
		return 0, false, nil
	case "udp4":
		return 4, false, nil
	case "udp6":
		return 6, false, nil
	}
	return 0, false, net.UnknownNetworkError(network)
}

func matchesFamily(a netip.Addr, fam int) bool {
	return fam == 0 || (fam == 4 && a.Is4()) || (fam == 6 && a.Is6())
}

// DialContext connects to address (an IP literal and port, e.g. "100.64.0.2:80" or
// "[fd00::2]:80") over the mesh. network is tcp, tcp4, tcp6, udp, udp4 or udp6.
func (m *Mesh) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if m.closed.Load() {
		return nil, m.errClosed("dial")
	}
	fam, tcp, err := family(network)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	ip, port, err := parseHostPort(address)
	if err == nil && (!ip.IsValid() || ip.IsUnspecified()) {
		err = errors.New("missing destination address")
	}
	if err == nil && !matchesFamily(ip, fam) {
		err = fmt.Errorf("address %s is not of network %s", ip, network)
	}
	if err == nil && port == 0 {
		err = errors.New("missing port")
	}
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("mesh: %w", err)}
	}
	dst := netip.AddrPortFrom(ip, port)
	if tcp {
		c, err := m.tnet.DialContextTCPAddrPort(ctx, dst)
		if err != nil {
			return nil, fmt.Errorf("mesh: %w", err)
		}
		return c, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: net.UDPAddrFromAddrPort(dst), Err: err}
	}
	c, err := m.tnet.DialUDPAddrPort(netip.AddrPort{}, dst)
	if err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	return c, nil
}

// listenAddr works out the local address for Listen/ListenPacket. An empty or unspecified host
// means every tunnel address of the node: for "tcp"/"udp" that is gVisor's wildcard (the invalid
// netip.Addr, which netstack turns into a dual-stack bind); for the 4/6 variants it is the node's
// one address of that family.
func (m *Mesh) listenAddr(network string, fam int, address string) (netip.AddrPort, error) {
	ip, port, err := parseHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if ip.IsValid() && !ip.IsUnspecified() {
		if !matchesFamily(ip, fam) {
			return netip.AddrPort{}, fmt.Errorf("address %s is not of network %s", ip, network)
		}
		return netip.AddrPortFrom(ip, port), nil
	}
	if ip.IsValid() && fam == 0 {
		// "0.0.0.0:p" / "[::]:p" with plain tcp/udp: the family the caller wrote.
		if ip.Is4() {
			fam = 4
		} else {
			fam = 6
		}
	}
	if fam == 0 {
		return netip.AddrPortFrom(netip.Addr{}, port), nil
	}
	var found netip.Addr
	for _, a := range m.addrs {
		if matchesFamily(a, fam) {
			if found.IsValid() {
				return netip.AddrPort{}, fmt.Errorf("node has several IPv%d addresses; listen on one of them", fam)
			}
			found = a
		}
	}
	if !found.IsValid() {
		return netip.AddrPort{}, fmt.Errorf("node has no IPv%d address", fam)
	}
	return netip.AddrPortFrom(found, port), nil
}

// Listen listens for TCP connections on the node's tunnel addresses. ":port" (or an unspecified
// host) with network "tcp" accepts on every tunnel address, IPv4 and IPv6.
func (m *Mesh) Listen(network, address string) (net.Listener, error) {
	la, err := m.listenOn(network, address, true)
	if err != nil {
		return nil, err
	}
	l, err := m.tnet.ListenTCPAddrPort(la)
	if err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	return l, nil
}

// listenOn checks a Listen (tcp) or ListenPacket (not tcp) call and returns the local address.
func (m *Mesh) listenOn(network, address string, tcp bool) (netip.AddrPort, error) {
	if m.closed.Load() {
		return netip.AddrPort{}, m.errClosed("listen")
	}
	fam, isTCP, err := family(network)
	if err == nil && isTCP != tcp {
		err = net.UnknownNetworkError(network)
	}
	var la netip.AddrPort
	if err == nil {
		la, err = m.listenAddr(network, fam, address)
	}
	if err != nil {
		return netip.AddrPort{}, &net.OpError{Op: "listen", Net: network, Err: fmt.Errorf("mesh: %w", err)}
	}
	return la, nil
}

// ListenPacket listens for UDP datagrams on the node's tunnel addresses; address as for Listen.
func (m *Mesh) ListenPacket(network, address string) (net.PacketConn, error) {
	la, err := m.listenOn(network, address, false)
	if err != nil {
		return nil, err
	}
	if la.Addr().IsValid() || la.Port() != 0 {
		c, err := m.tnet.ListenUDPAddrPort(la)
		if err != nil {
			return nil, fmt.Errorf("mesh: %w", err)
		}
		return c, nil
	}
	// Wildcard address with an ephemeral port: netstack cannot express "no address, no port"
	// (it needs one of them to pick the protocol), so pick the port here.
	var lastErr error
	for range 32 {
		port := uint16(32768 + rand.IntN(60999-32768+1))
		c, err := m.tnet.ListenUDPAddrPort(netip.AddrPortFrom(netip.Addr{}, port))
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("mesh: no free UDP port: %w", lastErr)
}
