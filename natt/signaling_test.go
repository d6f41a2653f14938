// signaling_test.go tests what an incoming signal does (decideSignal) and the memory of ended
// sessions and early candidates, without sockets.

package natt

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDecideSignal(t *testing.T) {
	const ours, theirs = "0000000000000001", "0000000000000002"
	offering := sessionView{id: ours, offerer: true}
	offerChecking := sessionView{id: ours, offerer: true, started: true}
	answering := sessionView{id: theirs, started: true} // we answered their offer
	offer := func(s string) SignalMessage { return SignalMessage{Type: SignalOffer, Session: s} }
	msg := func(typ SignalType, s string) SignalMessage { return SignalMessage{Type: typ, Session: s} }
	for _, tc := range []struct {
		name        string
		cur         sessionView
		controlling bool
		ended       bool
		msg         SignalMessage
		want        signalAction
	}{
		{"an offer, no session", sessionView{}, false, false, offer(theirs), sigAnswer},
		{"an offer of an ended session", sessionView{}, false, true, offer(theirs), sigIgnore},
		{"glare, controlling: ours wins", offering, true, false, offer(theirs), sigGlare},
		{"glare, controlled: answer", offering, false, false, offer(theirs), sigAnswer},
		{"a new offer while our offer is checking", offerChecking, true, false, offer(theirs), sigAnswer},
		{"their offer again: our answer was lost", answering, false, false, offer(theirs), sigResend},
		{"our own session offered back", offering, true, false, offer(ours), sigIgnore},
		{"a new offer replaces the answered session", answering, false, false, offer("0000000000000003"), sigAnswer},
		{"the answer to our offer", offering, true, false, msg(SignalAnswer, ours), sigStart},
		{"a second answer", offerChecking, true, false, msg(SignalAnswer, ours), sigIgnore},
		{"an answer for another session", offering, true, false, msg(SignalAnswer, theirs), sigIgnore},
		{"an answer to an offer we did not make", answering, false, false, msg(SignalAnswer, theirs), sigIgnore},
		{"a candidate, checks running", answering, false, false, msg(SignalCandidate, theirs), sigCandidate},
		{"a candidate before the answer", offering, true, false, msg(SignalCandidate, ours), sigPending},
		{"a candidate of an unknown session", offering, true, false, msg(SignalCandidate, theirs), sigEarly},
		{"a candidate of an ended session", offering, true, true, msg(SignalCandidate, theirs), sigIgnore},
		{"end of candidates", answering, false, false, msg(SignalEndOfCandidates, theirs), sigIgnore},
		{"the peer ends the session", answering, false, false, msg(SignalRestart, theirs), sigPeerEnded},
		{"the peer ends another session", answering, false, false, msg(SignalRestart, ours), sigIgnore},
		{"the peer ends a session, none current", sessionView{}, false, false, msg(SignalRestart, ours), sigIgnore},
	} {
		assert.Equal(t, tc.want, decideSignal(tc.cur, tc.controlling, tc.ended, tc.msg), tc.name)
	}
}

func TestSessionMemoryStale(t *testing.T) {
	var m sessionMemory
	assert.False(t, m.ended("s0"))
	for i := range staleSessionsKept + 1 {
		m.end(fmt.Sprintf("s%d", i))
	}
	m.end("s5") // again: no duplicate
	assert.False(t, m.ended("s0"), "the oldest is forgotten")
	assert.True(t, m.ended("s1"))
	assert.True(t, m.ended(fmt.Sprintf("s%d", staleSessionsKept)))
	assert.Len(t, m.stale, staleSessionsKept)
	m.revive("s5")
	assert.False(t, m.ended("s5"))
}

func TestSessionMemoryEarly(t *testing.T) {
	var m sessionMemory
	for i := range earlyCandidates + 5 {
		m.hold("a", fmt.Sprint(i))
	}
	assert.Len(t, m.take("a"), earlyCandidates, "candidates per session are bounded")
	assert.Empty(t, m.take("a"), "taken once")

	for i := range earlySessions + 1 {
		m.hold(fmt.Sprintf("s%d", i), "c")
	}
	assert.Empty(t, m.take("s0"), "the oldest session is evicted")
	assert.Equal(t, []string{"c"}, m.take("s1"))
	// What was taken or ended leaves room: four sessions are held again.
	m.end("s2")
	m.hold("x", "c")
	m.hold("y", "c")
	for _, id := range []string{"s3", "s4", "x", "y"} {
		assert.Equal(t, []string{"c"}, m.take(id), id)
	}
	m.hold("z", "c")
	m.end("z")
	assert.Empty(t, m.take("z"), "an ended session's candidates go")
}
