package natt

import (
	"strings"
	"testing"

	"github.com/pion/stun/v4"
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
			if len(urls) != 1 || urls[0].Scheme != stun.SchemeTypeSTUN {
				t.Fatalf("STUN server %q parsed to %v", stunServer, urls)
			}
		} else if !strings.HasPrefix(err.Error(), "natt: ") {
			t.Fatalf("error %q does not say where it comes from", err)
		}
		urls, err := parseTURN([]TURNServer{{URL: turnURL, Username: user, Password: pass}})
		if err != nil {
			return
		}
		u := urls[0]
		if len(urls) != 1 || (u.Scheme != stun.SchemeTypeTURN && u.Scheme != stun.SchemeTypeTURNS) ||
			u.Username != user || u.Password != pass || user == "" || pass == "" {
			t.Fatalf("TURN server %q (%q/%q) parsed to %+v", turnURL, user, pass, u)
		}
	})
}

// pion's ParseURI recursed without end on these (a host part that lacks a port even once a
// default one is added): a stack overflow no recover catches.
func TestParseServersRefusesUnsplittableHosts(t *testing.T) {
	if _, err := parseSTUN([]string{"[1]343"}); err == nil {
		t.Error("STUN server [1]343 accepted")
	}
	for _, u := range []string{"turn:[1]2?transport=udp", "turns:[::1]x", "stun:[a]b"} {
		if _, err := parseTURN([]TURNServer{{URL: u, Username: "u", Password: "p"}}); err == nil {
			t.Errorf("TURN server %q accepted", u)
		}
	}
	if _, err := parseSTUN([]string{"relay.example.com", "[2001:db8::1]:3478", "stun:192.0.2.1"}); err != nil {
		t.Errorf("valid STUN servers refused: %v", err)
	}
}
