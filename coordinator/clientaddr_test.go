package coordinator

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ff::/48")}

func isTestProxy(a netip.Addr) bool {
	for _, p := range testProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func TestForwardedFor(t *testing.T) {
	peer := netip.MustParseAddr("10.0.0.1")
	for _, c := range []struct {
		values []string
		want   string
	}{
		{nil, "10.0.0.1"},
		{[]string{""}, "10.0.0.1"},
		{[]string{"192.0.2.1"}, "192.0.2.1"},
		{[]string{" 192.0.2.1 , 10.2.3.4 "}, "192.0.2.1"},
		{[]string{"198.51.100.1, 192.0.2.1, 10.2.3.4"}, "192.0.2.1"},
		{[]string{"198.51.100.1", "192.0.2.1", "10.2.3.4"}, "192.0.2.1"},
		{[]string{"10.9.9.9, 10.2.3.4"}, "10.9.9.9"}, // every hop trusted: the left-most
		{[]string{"192.0.2.1:5555"}, "192.0.2.1"},
		{[]string{"[2001:db8::7]:5555"}, "2001:db8::7"},
		{[]string{"[2001:db8::7]"}, "2001:db8::7"},
		{[]string{"2001:db8::7, 2001:db8:ff::1"}, "2001:db8::7"},
		{[]string{"::ffff:192.0.2.1"}, "192.0.2.1"},
		{[]string{"fe80::1%eth0"}, "fe80::1"},
		{[]string{"192.0.2.1, unknown"}, "10.0.0.1"},
		{[]string{"192.0.2.1,,10.2.3.4"}, "10.2.3.4"},
		{[]string{"unknown, 192.0.2.1"}, "192.0.2.1"},
		{[]string{"192.0.2.1, [10.2.3.4"}, "10.0.0.1"},
	} {
		got := forwardedFor(peer, c.values, isTestProxy)
		assert.Equal(t, c.want, got.String(), "X-Forwarded-For %q", c.values)
	}
}

func TestParseHostAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:80": "192.0.2.1", "192.0.2.1": "192.0.2.1", "[::1]:80": "::1", "::1": "::1", "[::1]": "::1",
		"[::ffff:1.2.3.4]:1": "1.2.3.4", "[fe80::1%eth0]:1": "fe80::1",
		"pipe": "invalid IP", "": "invalid IP", "[::1": "invalid IP", "1.2.3.4:": "invalid IP", "@": "invalid IP",
	} {
		assert.Equal(t, want, parseHostAddr(in).String(), "%q", in)
	}
}

func TestSourceKey(t *testing.T) {
	assert.Equal(t, netip.MustParsePrefix("192.0.2.1/32"), sourceKey(netip.MustParseAddr("192.0.2.1")))
	assert.Equal(t, netip.MustParsePrefix("2001:db8:1:2::/64"), sourceKey(netip.MustParseAddr("2001:db8:1:2:3:4:5:6")))
	assert.Equal(t, netip.Prefix{}, sourceKey(netip.Addr{}))
}

// FuzzForwardedFor: whatever the header, the source is the peer or an address written in it;
// it is the peer when the header holds nothing usable; and it is never a trusted proxy unless
// every usable hop (and the peer) is one.
func FuzzForwardedFor(f *testing.F) {
	for _, s := range []string{"", "192.0.2.1", "192.0.2.1, 10.0.0.2", "[2001:db8::1]:80,10.1.1.1:1", "a,b,,c", ",", " , ", "10.0.0.1, garbage, 192.0.2.1",
		"::ffff:10.0.0.1", "fe80::1%25eth0", strings.Repeat("10.0.0.1,", 50)} {
		f.Add(s, "", "10.0.0.1:443")
		f.Add(s, "192.0.2.9", "10.0.0.1:443")
		f.Add(s, "", "198.51.100.1:1")
	}
	f.Fuzz(func(t *testing.T, h1, h2, remote string) {
		var values []string
		for _, h := range []string{h1, h2} {
			if h != "" {
				values = append(values, h)
			}
		}
		peer := parseHostAddr(remote)
		if !peer.IsValid() || !isTestProxy(peer) {
			return // clientAddr never reads the header then
		}
		got := forwardedFor(peer, values, isTestProxy)
		require.True(t, got.IsValid())
		require.Empty(t, got.Zone())
		require.False(t, got.Is4In6(), "mapped address %s", got)
		if got == peer {
			return
		}
		var written bool
		for _, v := range values {
			for _, e := range strings.Split(v, ",") {
				if parseHostAddr(strings.TrimSpace(e)) == got {
					written = true
				}
			}
		}
		require.True(t, written, "source %s is neither the peer nor in %q", got, values)
		if isTestProxy(got) {
			// Only when no untrusted hop was reached: the walk went through trusted hops only.
			for i := len(values) - 1; i >= 0; i-- {
				es := strings.Split(values[i], ",")
				for j := len(es) - 1; j >= 0; j-- {
					a := parseHostAddr(strings.TrimSpace(es[j]))
					if !a.IsValid() {
						return
					}
					require.True(t, isTestProxy(a), "source %s is a trusted proxy although hop %s is not", got, a)
				}
			}
		}
	})
}
