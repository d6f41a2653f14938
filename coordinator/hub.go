package coordinator

// The hub: what one coordinator process keeps in memory about devices — which are online
// (their event stream is connected here) and since when the ephemeral ones are gone — and the
// wake-ups that tell event streams to read the log again.

import (
	"sync"
	"time"
)

// hub wakes event streams when the store reports new events, and keeps the in-memory state of
// devices: which are online (stream connected) and when ephemeral devices went away.
type hub struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every store notification
	online  map[string]int
	// ephemeral maps each known ephemeral device to the time its last stream ended (or it was
	// registered / the coordinator started); the zero time while a stream is connected.
	ephemeral map[string]time.Time
	closer    closeOnce
	quit      chan struct{} // closed by Close
	done      chan struct{} // closed when run has returned
}

// newHub returns a hub that broadcasts every notification of sub until Close, which calls
// unsub.
func newHub(sub <-chan struct{}, unsub func()) *hub {
	h := &hub{
		changed: make(chan struct{}), online: map[string]int{}, ephemeral: map[string]time.Time{},
		quit: make(chan struct{}), done: make(chan struct{}),
	}
	go h.run(sub, unsub)
	return h
}

func (h *hub) run(sub <-chan struct{}, unsub func()) {
	defer close(h.done)
	defer unsub()
	for {
		select {
		case <-h.quit:
			return
		case _, ok := <-sub:
			if !ok {
				return
			}
			h.broadcast()
		}
	}
}

// Close stops listening to the store and waits for that to end. Calls after the first return
// an error wrapping net.ErrClosed. The in-memory state stays readable.
func (h *hub) Close() error {
	if err := h.closer.close("coordinator hub"); err != nil {
		return err
	}
	close(h.quit)
	<-h.done
	return nil
}

// wait returns a channel closed at the next store notification. Take it before reading the
// log so that no notification is missed.
func (h *hub) wait() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

// broadcast wakes every stream, e.g. after a change that appended no event (a member removed,
// an organization deleted) so that streams re-check their access.
func (h *hub) broadcast() {
	h.mu.Lock()
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

func (h *hub) isOnline(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.online[id] > 0
}

func (h *hub) connect(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.online[id]++
	if _, ok := h.ephemeral[id]; ok {
		h.ephemeral[id] = time.Time{}
	}
}

func (h *hub) disconnect(id string, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.online[id]--
	if h.online[id] <= 0 {
		delete(h.online, id)
		if _, ok := h.ephemeral[id]; ok {
			h.ephemeral[id] = now
		}
	}
}

func (h *hub) trackEphemeral(id string, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.ephemeral[id]; ok {
		return
	}
	if h.online[id] > 0 {
		now = time.Time{}
	}
	h.ephemeral[id] = now
}

// sawEphemeral restarts a disconnected ephemeral device's grace period from when it was seen.
func (h *hub) sawEphemeral(id string, seen time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if since, ok := h.ephemeral[id]; ok && !since.IsZero() && seen.After(since) {
		h.ephemeral[id] = seen
	}
}

// forget drops deleted devices from the ephemeral bookkeeping.
func (h *hub) forget(ids ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		delete(h.ephemeral, id)
	}
}

// expiredEphemeral lists ephemeral devices without a stream since before deadline.
func (h *hub) expiredEphemeral(deadline time.Time) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for id, since := range h.ephemeral {
		if !since.IsZero() && h.online[id] == 0 && since.Before(deadline) {
			out = append(out, id)
		}
	}
	return out
}
