// servers_test.go tests the STUN and TURN server lists: parsing (fuzzed: they come from the
// coordinator) and resolving.

package natt

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/pion/stun/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The STUN and TURN server lists come from the coordinator (the relay configuration it pushes
// on the event stream): network input, parsed by parseSTUN and parseTURN for New, SetSTUN and
// SetTURN.
func FuzzParseServers(f *testing.F) {
	f.Add("127.0.0.1:3478", "turn:127.0.0.1:3478?transport=udp", "1700000000:dev", "c2VjcmV0")
	f.Add("[2001:db8::1]:3478", "turns:relay.example.com:5349?transport=tcp", "u", "p")
	f.Add("stun:relay.example.com", "turn:[::1]:3478", "u", "")
	f.Add("", "stun:127.0.0.1:3478", "u", "p")
	f.Add(":", "turn:?transport=", "", "")
	f.Fuzz(func(t *testing.T, stunServer, turnURL, user, pass string) {
		if urls, err := parseSTUN([]string{stunServer}); err == nil {
			require.Len(t, urls, 1, "STUN server %q", stunServer)
			require.Equal(t, stun.SchemeTypeSTUN, urls[0].Scheme, "STUN server %q", stunServer)
		} else {
			require.True(t, strings.HasPrefix(err.Error(), "natt: "), "error %q does not say where it comes from", err)
		}
		urls, err := parseTURN([]TURNServer{{URL: turnURL, Username: user, Password: pass}})
		if err != nil {
			return
		}
		require.Len(t, urls, 1)
		u := urls[0]
		require.Contains(t, []stun.SchemeType{stun.SchemeTypeTURN, stun.SchemeTypeTURNS}, u.Scheme, "TURN server %q", turnURL)
		require.NotEmpty(t, user, "TURN server %q accepted without a username", turnURL)
		require.NotEmpty(t, pass, "TURN server %q accepted without a password", turnURL)
		require.Equal(t, user, u.Username)
		require.Equal(t, pass, u.Password)
	})
}

// pion's ParseURI recursed without end on these (a host part that lacks a port even once a
// default one is added): a stack overflow no recover catches.
func TestParseServersRefusesUnsplittableHosts(t *testing.T) {
	_, err := parseSTUN([]string{"[1]343"})
	assert.Error(t, err, "STUN server [1]343 accepted")
	for _, u := range []string{"turn:[1]2?transport=udp", "turns:[::1]x", "stun:[a]b"} {
		_, err := parseTURN([]TURNServer{{URL: u, Username: "u", Password: "p"}})
		assert.Error(t, err, "TURN server %q accepted", u)
	}
	_, err = parseSTUN([]string{"relay.example.com", "[2001:db8::1]:3478", "stun:192.0.2.1"})
	assert.NoError(t, err, "valid STUN servers refused")
}

func TestResolveServers(t *testing.T) {
	ctx := context.Background()
	got, err := ResolveServers(ctx, nil, []string{"[::1]:3479", "127.0.0.1:3478", "stun:127.0.0.2:3480", "127.0.0.2:x"})
	require.NoError(t, err)
	want := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:3478"),
		netip.MustParseAddrPort("127.0.0.2:3480"),
		netip.MustParseAddrPort("[::1]:3479"), // IPv6 last
	}
	assert.Equal(t, want, got)
	for _, bad := range [][]string{{"nohostport"}, {"127.0.0.1:0"}, nil} {
		_, err := ResolveServers(ctx, nil, bad)
		assert.Error(t, err, "%q accepted", bad)
		if err != nil {
			assert.True(t, strings.HasPrefix(err.Error(), "natt: "), "error %q", err)
		}
	}
}
