package nexodus

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/internal/engine"
)

// A peer NAT traversal has no state for yet reads "new", like one whose first session has not
// started, never "" or "waiting" (which programs take for a verdict); the path is direct or
// relayed only while the WireGuard session is fresh.
func TestPeerStatus(t *testing.T) {
	now := time.Now()
	p := peerStatus(engine.PeerSnapshot{}, now)
	assert.Equal(t, Traversal{State: TraversalNew}, p.Traversal)
	assert.False(t, p.Traversal.Settled())
	assert.Equal(t, PathNone, p.Path)

	p = peerStatus(engine.PeerSnapshot{ICEState: "waiting", ICEReason: "ICE failed"}, now)
	assert.Equal(t, "waiting: ICE failed", p.Traversal.String())
	assert.True(t, p.Traversal.Settled())

	since := now.Add(-time.Minute)
	p = peerStatus(engine.PeerSnapshot{
		ICEState: "connected", LocalCandidate: "relay", RemoteCandidate: "host", PairSince: since,
		Relayed: true, LastHandshake: now.Add(-time.Second), Endpoint: netip.MustParseAddrPort("192.0.2.1:3478"),
	}, now)
	assert.Equal(t, PathRelayed, p.Path)
	assert.Equal(t, CandidateRelay, p.LocalCandidate)
	assert.Equal(t, since, p.PathSince)

	p = peerStatus(engine.PeerSnapshot{LastHandshake: now.Add(-handshakeFresh - time.Second)}, now)
	assert.Equal(t, PathNone, p.Path, "a lapsed session is no path")
}

func TestTraversalJSON(t *testing.T) {
	b, err := json.Marshal(Traversal{State: TraversalWaiting, Reason: "ICE failed"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"state":"waiting","reason":"ICE failed"}`, string(b))
	b, err = json.Marshal(Traversal{State: TraversalConnected})
	require.NoError(t, err)
	assert.JSONEq(t, `{"state":"connected"}`, string(b))
}
