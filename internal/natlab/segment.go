//go:build linux

// segment.go holds Segment, an L2 network of the lab (the public one or a NAT's LAN): the
// addresses it hands out and how a namespace is attached to it.

package natlab

import (
	"fmt"
	"net/netip"
	"sync"
)

// Segment is an L2 network: the public segment or a NAT's LAN.
type Segment struct {
	lab        *Lab
	name       string
	ns         string // namespace holding the bridge
	bridge     string
	prefix     netip.Prefix
	gateway    netip.Addr
	mu         sync.Mutex
	next       int // next host octet
	nextRouter int // public segment: next NAT WAN octet in 203.0.113.0/24
}

// Name is "public" or the name of the NAT whose LAN this is.
func (s *Segment) Name() string { return s.name }

// Prefix is the segment's subnet for hosts (198.51.100.0/24 on the public segment).
func (s *Segment) Prefix() netip.Prefix { return s.prefix }

// Gateway is the address hosts on the segment route through: a NAT's LAN address, or on the
// public segment the bridge's own address (which does not forward).
func (s *Segment) Gateway() netip.Addr { return s.gateway }

// IsPublic reports whether this is the lab's public segment.
func (s *Segment) IsPublic() bool { return s == s.lab.public }

// allocate returns the next address (with prefix length) and gateway for a host or a router.
func (s *Segment) allocate(router bool) (netip.Prefix, netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	base, octet := s.prefix, &s.next
	gw := s.gateway
	if router && s.IsPublic() {
		base, octet = publicNATNet, &s.nextRouter
		gw = netip.MustParseAddr("203.0.113.1")
	}
	if *octet > 254 {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("segment %s is full", s.name)
	}
	a := base.Addr().As4()
	a[3] = byte(*octet)
	*octet++
	return netip.PrefixFrom(netip.AddrFrom4(a), base.Bits()), gw, nil
}

// attach connects namespace ns to the segment with a veth pair whose end in ns is ifname,
// assigns it the next free address and routes. It returns the address.
func (s *Segment) attach(ns, name, ifname string, router bool) (netip.Addr, error) {
	addr, gw, err := s.allocate(router)
	if err != nil {
		return netip.Addr{}, err
	}
	port := "p-" + name
	if err := s.lab.ipBatch(s.ns,
		fmt.Sprintf("link add %s type veth peer name %s netns %s", port, ifname, ns),
		fmt.Sprintf("link set %s master %s", port, s.bridge),
		fmt.Sprintf("link set %s up", port),
	); err != nil {
		return netip.Addr{}, err
	}
	cmds := []string{
		fmt.Sprintf("addr add %s dev %s", addr, ifname),
		fmt.Sprintf("link set %s up", ifname),
	}
	if s.IsPublic() {
		// Both public ranges are on-link on the public bridge.
		for _, p := range []netip.Prefix{publicHostNet, publicNATNet} {
			if !p.Contains(addr.Addr()) {
				cmds = append(cmds, fmt.Sprintf("route add %s dev %s", p, ifname))
			}
		}
	}
	cmds = append(cmds, fmt.Sprintf("route add default via %s dev %s", gw, ifname))
	if err := s.lab.ipBatch(ns, cmds...); err != nil {
		return netip.Addr{}, err
	}
	return addr.Addr(), nil
}
