// status.go holds what Manager.Paths reports of a peer (PathStatus) and how it changes: a pure
// fold of the peer's status events, so that every transition is in one place and testable
// without sockets.

package natt

import (
	"time"

	"github.com/nexodus-sdk/nexodus/key"
)

// PeerState is where a peer's ICE session stands.
type PeerState string

// Peer states.
const (
	// StateNew: the peer was just added and its first session has not started yet. It is not
	// a verdict on the path: a caller waiting for NAT traversal to settle must keep waiting.
	StateNew          PeerState = "new"
	StateOffering     PeerState = "offering"     // our offer is out, waiting for the answer
	StateChecking     PeerState = "checking"     // credentials exchanged, connectivity checks running
	StateConnected    PeerState = "connected"    // a pair is selected; consent checks keep it alive
	StateDisconnected PeerState = "disconnected" // consent checks stopped getting answers
	StateWaiting      PeerState = "waiting"      // a session failed or ended (Reason says why); a new one starts after a backoff
	StateClosed       PeerState = "closed"
)

// PathStatus describes one peer's ICE state.
type PathStatus struct {
	PeerID      string
	PeerKey     key.Key
	Controlling bool // this side is the controlling agent (its public key is the smaller)
	State       PeerState
	Session     string // current session ID, "" while new or waiting
	Path        Path   // the selected pair; zero when none
	Sessions    int    // sessions started with this peer so far (offers made or answered)
	Failures    int    // sessions that failed, were disconnected or were ended by the peer
	Reason      string // why the last session was lost; "" once connected again
	Changed     time.Time
}

// statusKind names what happened to a peer, as far as its PathStatus is concerned.
type statusKind int

const (
	statusOffered      statusKind = iota // our offer of session went out
	statusAnswered                       // we answered the peer's offer of session
	statusChecking                       // connectivity checks began
	statusConnected                      // a pair works
	statusResumed                        // the kept relayed session is current again: its successor failed
	statusPath                           // the reported path changed to path
	statusDisconnected                   // consent checks went unanswered (reason)
	statusFailed                         // the session failed or was ended (reason); a restart is scheduled
	statusNotStarted                     // no session could be created (reason); a restart is scheduled
	statusKeptLost                       // the kept relayed session, which carried the path, was lost (reason)
	statusClosed                         // the peer was removed or the Manager closed
)

// statusEvent is one thing that happened to a peer; the fields besides kind are set by the
// kinds that say so.
type statusEvent struct {
	kind    statusKind
	session string
	reason  string
	path    Path
}

// newStatus is the status of a peer just added.
func newStatus(id string, k key.Key, controlling bool, now time.Time) PathStatus {
	return PathStatus{PeerID: id, PeerKey: k, Controlling: controlling, State: StateNew, Changed: now}
}

// next returns the status after ev happened at now.
func (s PathStatus) next(ev statusEvent, now time.Time) PathStatus {
	switch ev.kind {
	case statusOffered:
		s.State, s.Session = StateOffering, ev.session
		s.Sessions++
	case statusAnswered: // the state stays until the checks begin, at once
		s.Session = ev.session
		s.Sessions++
	case statusChecking:
		s.State = StateChecking
	case statusConnected:
		s.State, s.Reason = StateConnected, ""
	case statusResumed:
		s.State, s.Session = StateConnected, ev.session
	case statusPath:
		s.Path = ev.path
	case statusDisconnected:
		s.State, s.Reason = StateDisconnected, ev.reason
		s.Failures++
	case statusFailed:
		if s.State != StateDisconnected { // a disconnected session was counted already
			s.Failures++
		}
		s.State, s.Session, s.Reason = StateWaiting, "", ev.reason
	case statusNotStarted:
		s.State, s.Session, s.Reason = StateWaiting, "", ev.reason
	case statusKeptLost:
		s.Failures++
		s.Reason = ev.reason
	case statusClosed:
		s.State, s.Session, s.Path = StateClosed, "", Path{}
	}
	s.Changed = now
	return s
}
