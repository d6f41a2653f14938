// status_test.go tests the fold of status events into a peer's PathStatus, without sockets.

package natt

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/nexodus-sdk/nexodus/key"
)

// foldStatus applies events, one a second, to a new peer's status.
func foldStatus(evs ...statusEvent) PathStatus {
	t0 := time.Unix(1700000000, 0)
	st := newStatus("b", key.Key{2}, true, t0)
	for i, ev := range evs {
		st = st.next(ev, t0.Add(time.Duration(i+1)*time.Second))
	}
	return st
}

func TestStatusFold(t *testing.T) {
	path := Path{Remote: netip.MustParseAddrPort("192.0.2.1:5000"), LocalType: CandidateHost, RemoteType: CandidateHost}
	offered := statusEvent{kind: statusOffered, session: "s1"}
	connected := []statusEvent{offered, {kind: statusChecking}, {kind: statusPath, path: path}, {kind: statusConnected}}
	disconnected := append(connected[:len(connected):len(connected)],
		statusEvent{kind: statusPath}, statusEvent{kind: statusDisconnected, reason: "consent checks unanswered"})
	for _, tc := range []struct {
		name string
		evs  []statusEvent
		want PathStatus // the fields compared: State, Session, Path, Sessions, Failures, Reason
	}{
		{"new", nil, PathStatus{State: StateNew}},
		{"offered", []statusEvent{offered}, PathStatus{State: StateOffering, Session: "s1", Sessions: 1}},
		{"answered", []statusEvent{{kind: statusAnswered, session: "s2"}, {kind: statusChecking}},
			PathStatus{State: StateChecking, Session: "s2", Sessions: 1}},
		{"connected", connected, PathStatus{State: StateConnected, Session: "s1", Path: path, Sessions: 1}},
		{"disconnected", disconnected,
			PathStatus{State: StateDisconnected, Session: "s1", Sessions: 1, Failures: 1, Reason: "consent checks unanswered"}},
		{"disconnected, then failed: counted once", append(disconnected, statusEvent{kind: statusFailed, reason: "ICE failed"}),
			PathStatus{State: StateWaiting, Sessions: 1, Failures: 1, Reason: "ICE failed"}},
		{"failed", []statusEvent{offered, {kind: statusFailed, reason: "peer ended the session"}},
			PathStatus{State: StateWaiting, Sessions: 1, Failures: 1, Reason: "peer ended the session"}},
		{"not started: no failure", []statusEvent{{kind: statusNotStarted, reason: "cannot start ICE session: x"}},
			PathStatus{State: StateWaiting, Reason: "cannot start ICE session: x"}},
		{"the reason stays through the retries", []statusEvent{offered, {kind: statusFailed, reason: "r"}, {kind: statusOffered, session: "s2"}},
			PathStatus{State: StateOffering, Session: "s2", Sessions: 2, Failures: 1, Reason: "r"}},
		{"connected again clears the reason", append([]statusEvent{{kind: statusFailed, reason: "r"}}, connected...),
			PathStatus{State: StateConnected, Session: "s1", Path: path, Sessions: 1, Failures: 1}},
		{"kept relayed session resumed", append(connected, statusEvent{kind: statusOffered, session: "s2"}, statusEvent{kind: statusResumed, session: "s1"}),
			PathStatus{State: StateConnected, Session: "s1", Path: path, Sessions: 2}},
		{"kept relayed session lost", append(connected, statusEvent{kind: statusOffered, session: "s2"},
			statusEvent{kind: statusPath}, statusEvent{kind: statusKeptLost, reason: "relayed session lost"}),
			PathStatus{State: StateOffering, Session: "s2", Sessions: 2, Failures: 1, Reason: "relayed session lost"}},
		{"closed", append(connected, statusEvent{kind: statusClosed}), PathStatus{State: StateClosed, Sessions: 1}},
	} {
		got := foldStatus(tc.evs...)
		assert.Equal(t, "b", got.PeerID, tc.name)
		assert.Equal(t, key.Key{2}, got.PeerKey, tc.name)
		assert.True(t, got.Controlling, tc.name)
		assert.Equal(t, time.Unix(1700000000+int64(len(tc.evs)), 0), got.Changed, "%s: Changed is the last event's time", tc.name)
		got.PeerID, got.PeerKey, got.Controlling, got.Changed = "", key.Key{}, false, time.Time{}
		assert.Equal(t, tc.want, got, tc.name)
	}
}
