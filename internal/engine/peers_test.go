package engine

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/key"
)

// The reflexive address is never cut to make room, and loopback goes first when the list is
// full: every peer behind another NAT needs the reflexive one, only local peers loopback.
func TestPublishedEndpointsKeepReflexive(t *testing.T) {
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}
	for i := range api.MaxEndpoints + 2 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}))
	}
	addrs = append(addrs, netip.MustParseAddr("127.0.0.2"))
	refl := netip.MustParseAddrPort("203.0.113.7:40000")
	eps := PublishedEndpoints(addrs, 51820, refl)
	require.Len(t, eps, api.MaxEndpoints)
	assert.Equal(t, api.Endpoint{Source: api.EndpointReflexive, Address: refl.String()}, eps[0])
	for _, ep := range eps[1:] {
		ap := netip.MustParseAddrPort(ep.Address)
		assert.Equal(t, api.EndpointLocal, ep.Source)
		assert.False(t, ap.Addr().IsLoopback(), "loopback %v published while LAN addresses fill the list", ap)
		assert.Equal(t, uint16(51820), ap.Port())
	}

	// With room, loopback is published too (peers on the same machine use it), after the rest.
	eps = PublishedEndpoints(addrs[:4], 51820, netip.AddrPort{})
	var got []string
	for _, ep := range eps {
		assert.Equal(t, api.EndpointLocal, ep.Source)
		got = append(got, ep.Address)
	}
	assert.Equal(t, []string{"10.0.0.1:51820", "10.0.0.2:51820", "127.0.0.1:51820", "[::1]:51820"}, got)
}

func TestHostnames(t *testing.T) {
	for h, want := range map[string]bool{"db": true, "DB-1": true, "": false, "-a": false, "a-": false, "a.b": false, "ü": false} {
		assert.Equal(t, want, ValidHostname(h), h)
	}
	assert.Equal(t, "box", SanitizeHostname("Box.local"))
	assert.Equal(t, "node", SanitizeHostname("..."))
	assert.True(t, ValidHostname(SanitizeHostname("--ünïcode_host--")))
}

// Device records come from the coordinator (the peer list on the event stream): network input.
// Whatever they hold, the node either refuses a record or makes a WireGuard peer of it whose
// allowed IPs are masked prefixes and whose endpoints are usable addresses.
func FuzzMeshPeer(f *testing.F) {
	var zero key.Key
	f.Add(zero.String(), "100.64.0.2", "fd00::2", "10.1.0.0/16", "192.0.2.7:51820", "db")
	f.Add("not-base64", "100.64.0.300", "", "10.1.0.1/16", "[::1]:0", "")
	f.Add(zero.String(), "", "", "::/0", "192.0.2.7", "a.b")
	f.Fuzz(func(t *testing.T, pub, v4, v6, prefix, endpoint, hostname string) {
		d := api.Device{
			ID: "dev", Hostname: hostname, PublicKey: pub, TunnelIPv4: v4, TunnelIPv6: v6,
			ChildPrefixes: []string{prefix},
			Endpoints:     []api.Endpoint{{Source: api.EndpointLocal, Address: endpoint}},
		}
		p := ParseDevice(d)
		require.Equal(t, "dev", p.ID)
		for _, ep := range p.Endpoints {
			require.True(t, ep.IsValid())
		}
		mp, err := MeshPeer(d)
		if err != nil {
			return
		}
		for _, pfx := range mp.AllowedIPs {
			require.True(t, pfx.IsValid() && pfx == pfx.Masked(), "allowed IP %v of %+v: not a masked prefix", pfx, d)
		}
		for _, ep := range mp.Endpoints {
			require.True(t, ep.IsValid(), "endpoint %v of %+v", ep, d)
		}
	})
}
