package coordinator

// The hub: what one coordinator process keeps in memory about devices — which are online
// (their event stream is connected here) and since when the ephemeral ones are gone — and the
// wake-ups that tell event streams to read the log again: per organization, so that a change
// wakes only the streams that follow its organization.

import (
	"sync"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// hub wakes event streams when the store reports new events, and keeps the in-memory state of
// devices: which are online (stream connected) and when ephemeral devices went away.
type hub struct {
	mu sync.Mutex
	// waits holds, per organization with a waiting stream, the channel closed (and dropped) at
	// the organization's next change. Organizations nobody waits on have none, so a change
	// there costs nothing.
	waits  map[string]chan struct{}
	online map[string]int
	// ephemeral maps each known ephemeral device to the time its last stream ended (or it was
	// registered / the coordinator started); the zero time while a stream is connected.
	ephemeral map[string]time.Time
	closer    closeOnce
	unwatch   func()
}

// newHub returns a hub that follows the store's changes until Close.
func newHub(st store.Store) *hub {
	h := &hub{waits: map[string]chan struct{}{}, online: map[string]int{}, ephemeral: map[string]time.Time{}}
	h.unwatch = st.Watch(h.changed)
	return h
}

// changed wakes the streams of the changed organization; a Change without one (the store may
// have missed notifications) wakes every stream. It runs on the store's goroutine and does
// not block.
func (h *hub) changed(c store.Change) {
	if c.OrganizationID == "" {
		h.broadcast()
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, ok := h.waits[c.OrganizationID]; ok {
		close(ch)
		delete(h.waits, c.OrganizationID)
	}
}

// Close stops following the store. Calls after the first return an error wrapping
// net.ErrClosed. The in-memory state stays readable.
func (h *hub) Close() error {
	if err := h.closer.close("coordinator hub"); err != nil {
		return err
	}
	h.unwatch()
	return nil
}

// wait returns a channel closed at the next change of the organization (or a broadcast). Take
// it before reading the log so that no change is missed.
func (h *hub) wait(orgID string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.waits[orgID]
	if !ok {
		ch = make(chan struct{})
		h.waits[orgID] = ch
	}
	return ch
}

// broadcast wakes every stream, e.g. after a change that appended no event (a member removed,
// an organization deleted) so that streams re-check their access.
func (h *hub) broadcast() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, ch := range h.waits {
		close(ch)
		delete(h.waits, id)
	}
}

func (h *hub) isOnline(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.online[id] > 0
}

// onlineOf reports isOnline for each of ids, under one lock.
func (h *hub) onlineOf(ids []string) []bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]bool, len(ids))
	for i, id := range ids {
		out[i] = h.online[id] > 0
	}
	return out
}

// onlineCount is how many devices have a stream here.
func (h *hub) onlineCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.online)
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
