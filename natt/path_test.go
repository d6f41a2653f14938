// path_test.go tests when a selected pair is news for OnPath (nextPath), without sockets.

package natt

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNextPath(t *testing.T) {
	send := func([]byte) error { return nil }
	direct := Path{Local: netip.MustParseAddrPort("10.0.0.1:5000"), Remote: netip.MustParseAddrPort("192.0.2.1:5000"),
		LocalType: CandidateHost, RemoteType: CandidateSrflx, session: "s1"}
	directLater := direct
	directLater.session = "s2"
	other := direct
	other.Remote = netip.MustParseAddrPort("192.0.2.1:5001")
	relayed := direct
	relayed.LocalType, relayed.Send = CandidateRelay, send
	relayedLater := relayed
	relayedLater.session = "s2"

	for _, tc := range []struct {
		name      string
		old, cur  Path
		news      bool
		session   string // of the path kept
		keepsOld  bool   // the path kept is old (with cur's session), else cur
		wantValid bool
	}{
		{"still none", Path{}, Path{}, false, "", true, false},
		{"first path", Path{}, direct, true, "s1", false, true},
		{"lost", direct, Path{}, true, "", false, false},
		{"same pair, same session", direct, direct, false, "s1", true, true},
		{"same direct pair, new session", direct, directLater, false, "s2", true, true},
		{"another pair", direct, other, true, "s1", false, true},
		{"relayed pair of the same session", relayed, relayed, false, "s1", true, true},
		{"relayed pair of a new session", relayed, relayedLater, true, "s2", false, true},
		{"direct to relayed", direct, relayed, true, "s1", false, true},
	} {
		got, news := nextPath(tc.old, tc.cur)
		assert.Equal(t, tc.news, news, tc.name)
		assert.Equal(t, tc.session, got.session, tc.name)
		assert.Equal(t, tc.wantValid, got.Valid(), tc.name)
		if tc.keepsOld {
			assert.True(t, got.samePair(tc.old), tc.name)
		} else {
			assert.True(t, got.samePair(tc.cur), tc.name)
		}
	}
}
