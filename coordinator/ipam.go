package coordinator

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"strings"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// IP address management. Organizations get an IPv4 block from the pool (or choose a CIDR) and
// a random ULA /64 (the first /64 of a random fd00::/8 /48). Devices get the lowest free host
// address of each; addresses are released when the device is deleted or moved.

func v4(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func addr4(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}

// allocOrgIPv4 picks the block of size bits in pool used by the fewest organizations (lowest
// first).
func allocOrgIPv4(orgs []store.Organization, pool netip.Prefix, bits int) (netip.Prefix, error) {
	shift := uint(32 - bits)
	n := uint32(1) << uint(bits-pool.Bits())
	base := v4(pool.Addr()) >> shift
	use := make(map[uint32]int)
	for _, o := range orgs {
		p, err := netip.ParsePrefix(o.IPv4CIDR)
		if err != nil || !p.Addr().Is4() || !p.Overlaps(pool) {
			continue
		}
		if p.Bits() <= pool.Bits() { // covers the whole pool
			for i := uint32(0); i < n; i++ {
				use[i]++
			}
			continue
		}
		first := v4(p.Masked().Addr())>>shift - base
		count := uint32(1)
		if p.Bits() < bits {
			count = uint32(1) << uint(bits-p.Bits())
		}
		for i := first; i < first+count && i < n; i++ {
			use[i]++
		}
	}
	best, bestUse := uint32(0), -1
	for i := uint32(0); i < n; i++ {
		u := use[i]
		if bestUse < 0 || u < bestUse {
			best, bestUse = i, u
			if u == 0 {
				break
			}
		}
	}
	return netip.PrefixFrom(addr4((base+best)<<shift), bits), nil
}

// allocOrgIPv6 returns a random fd00::/8 /48's first /64 not used by another organization.
func allocOrgIPv6(orgs []store.Organization) (netip.Prefix, error) {
	taken := make(map[string]bool, len(orgs))
	for _, o := range orgs {
		taken[o.IPv6CIDR] = true
	}
	for range 16 {
		var b [16]byte
		b[0] = 0xfd
		_, _ = rand.Read(b[1:6])
		p := netip.PrefixFrom(netip.AddrFrom16(b), 64)
		if !taken[p.String()] {
			return p, nil
		}
	}
	return netip.Prefix{}, errorf(ErrPoolExhausted, "no free IPv6 prefix")
}

// allocDeviceAddrs picks the lowest free IPv4 host address (skipping the network and broadcast
// addresses) and the lowest free IPv6 address (from ::1) of the organization, given the
// addresses its devices hold (store.Tx.ListDeviceAddresses), ignoring the device with ID except.
func allocDeviceAddrs(o store.Organization, devices []store.DeviceAddresses, except string) (netip.Addr, netip.Addr, error) {
	p4, err := netip.ParsePrefix(o.IPv4CIDR)
	if err != nil || !p4.Addr().Is4() {
		return netip.Addr{}, netip.Addr{}, errorf(ErrPoolExhausted, "organization has no usable IPv4 CIDR")
	}
	p6, err := netip.ParsePrefix(o.IPv6CIDR)
	if err != nil || !p6.Addr().Is6() {
		return netip.Addr{}, netip.Addr{}, errorf(ErrPoolExhausted, "organization has no usable IPv6 prefix")
	}
	used := make(map[netip.Addr]bool, 2*len(devices))
	for _, d := range devices {
		if d.DeviceID == except {
			continue
		}
		if a, err := netip.ParseAddr(d.TunnelIPv4); err == nil {
			used[a] = true
		}
		if a, err := netip.ParseAddr(d.TunnelIPv6); err == nil {
			used[a] = true
		}
	}
	p4 = p4.Masked()
	var a4 netip.Addr
	if p4.Bits() <= 30 {
		first := v4(p4.Addr()) + 1
		last := v4(p4.Addr()) | (1<<uint(32-p4.Bits()) - 1) - 1
		for u := first; u <= last; u++ {
			if a := addr4(u); !used[a] {
				a4 = a
				break
			}
		}
	}
	if !a4.IsValid() {
		return a4, netip.Addr{}, errorf(ErrPoolExhausted, "no free IPv4 address in %s", p4)
	}
	a6 := p6.Masked().Addr().Next()
	for used[a6] && p6.Contains(a6) {
		a6 = a6.Next()
	}
	if !p6.Contains(a6) {
		return a4, a6, errorf(ErrPoolExhausted, "no free IPv6 address in %s", p6)
	}
	return a4, a6, nil
}

// hostnameTaken reports whether another device of the organization uses hostname.
func hostnameTaken(devices []store.Device, hostname, except string) bool {
	for _, d := range devices {
		if d.ID != except && strings.EqualFold(d.Hostname, hostname) {
			return true
		}
	}
	return false
}
