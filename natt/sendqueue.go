// sendqueue.go holds the two queues of a peer's actor: the events pion's callbacks hand it
// (which must never block), and the signals it sends out, in order, from a goroutine of their
// own (so that a slow coordinator never stalls ICE).

package natt

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/ice/v4"
)

// Bounds of the send queue.
const (
	maxOutbox = 256 // queued signals; the oldest goes first when full
	// finalSignalWait bounds the last signal of a peer that shuts down (its "restart").
	finalSignalWait = time.Second
)

type eventKind int

const (
	evCandidate eventKind = iota // a local candidate was gathered (cand)
	evGathered                   // gathering completed
	evState                      // the agent's connection state changed (state)
	evPair                       // the agent selected a pair (path)
)

// agentEvent is one callback of the agent of session sess.
type agentEvent struct {
	sess  string
	kind  eventKind
	cand  string
	state ice.ConnectionState
	path  Path
}

// eventQueue is an unbounded queue from pion's callbacks to the actor: callbacks must never
// block (closing an agent waits for them). It holds what one agent produces: a few candidates
// and state changes.
type eventQueue struct {
	mu     sync.Mutex
	q      []agentEvent
	notify chan struct{}
}

func newEventQueue() *eventQueue { return &eventQueue{notify: make(chan struct{}, 1)} }

func (e *eventQueue) push(ev agentEvent) {
	e.mu.Lock()
	e.q = append(e.q, ev)
	e.mu.Unlock()
	wake(e.notify)
}

func (e *eventQueue) drain() []agentEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.q
	e.q = nil
	return q
}

// sender sends one peer's signals in order from its own goroutine (run).
type sender struct {
	ctx    context.Context // the peer's: ends a send in progress when the peer goes
	signal func(ctx context.Context, b []byte) error
	log    *slog.Logger

	mu       sync.Mutex
	q        [][]byte
	stopping bool
	notify   chan struct{}
}

func newSender(ctx context.Context, signal func(context.Context, []byte) error, log *slog.Logger) *sender {
	return &sender{ctx: ctx, signal: signal, log: log, notify: make(chan struct{}, 1)}
}

// push queues b, dropping the oldest signal when the queue is full: retransmission repairs the
// loss, and the oldest is the least useful.
func (s *sender) push(b []byte) {
	s.mu.Lock()
	if !s.stopping {
		if len(s.q) >= maxOutbox {
			s.q = s.q[1:]
		}
		s.q = append(s.q, b)
	}
	s.mu.Unlock()
	wake(s.notify)
}

// stop discards what is queued, queues final (if not nil), and lets run exit once it is sent.
func (s *sender) stop(final []byte) {
	s.mu.Lock()
	s.stopping = true
	s.q = nil
	if final != nil {
		s.q = [][]byte{final}
	}
	s.mu.Unlock()
	wake(s.notify)
}

// run sends until stop; the final signal gets finalSignalWait at most.
func (s *sender) run() {
	for {
		s.mu.Lock()
		var b []byte
		if len(s.q) > 0 {
			b = s.q[0]
			s.q = s.q[1:]
		}
		stopping := s.stopping
		s.mu.Unlock()
		switch {
		case b != nil && stopping:
			ctx, cancel := context.WithTimeout(context.Background(), finalSignalWait)
			s.send(ctx, b)
			cancel()
		case b != nil:
			s.send(s.ctx, b)
		case stopping:
			return
		default:
			<-s.notify
		}
	}
}

func (s *sender) send(ctx context.Context, b []byte) {
	if err := s.signal(ctx, b); err != nil {
		s.log.Debug("signal not delivered", "err", err)
	}
}

// wake signals a notification channel of capacity 1 without blocking.
func wake(notify chan<- struct{}) {
	select {
	case notify <- struct{}{}:
	default:
	}
}
