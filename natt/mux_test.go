// mux_test.go tests which local addresses become host candidates.

package natt

import (
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestHostFilter(t *testing.T) {
	const port = 5000
	unspec := netip.AddrPortFrom(netip.IPv4Unspecified(), port)
	lo := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	addrs := func(f hostFilter, local netip.AddrPort) []netip.AddrPort {
		var out []netip.AddrPort
		for _, a := range f.listenAddrs(local) {
			out = append(out, a.(*net.UDPAddr).AddrPort())
		}
		return out
	}
	assert.NotContains(t, addrs(hostFilter{}, unspec), lo, "loopback offered without IncludeLoopback")
	assert.Contains(t, addrs(hostFilter{includeLoopback: true}, unspec), lo, "loopback missing with IncludeLoopback")
	none := hostFilter{includeLoopback: true, ip: func(netip.Addr) bool { return false }}
	assert.Empty(t, addrs(none, unspec), "IP filter ignored")
	noIface := hostFilter{includeLoopback: true, iface: func(string) bool { return false }}
	assert.Empty(t, addrs(noIface, unspec), "interface filter ignored")
	assert.Equal(t, []netip.AddrPort{lo}, addrs(hostFilter{includeLoopback: true}, lo), "bound socket")
	f := hostFilter{includeLoopback: true}
	for _, a := range []string{"169.254.1.1", "fe80::1", "::1", "224.0.0.1", "0.0.0.0"} {
		assert.False(t, f.keepAddr(netip.MustParseAddr(a)), "%s kept", a)
	}
}
