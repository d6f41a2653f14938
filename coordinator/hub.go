package coordinator

// The hub: what one coordinator process keeps in memory about devices — which are online
// (their event stream is connected here; presence.go shares that with other replicas through
// the store, where the sweeper also finds ephemeral devices that are gone) — and the wake-ups
// that tell event streams to read the log again: per organization, so that a change wakes
// only the streams that follow its organization.

import (
	"sync"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// hub wakes event streams when the store reports new events, and counts the devices whose
// stream is connected here.
type hub struct {
	mu sync.Mutex
	// waits holds, per organization with a waiting stream, the channel closed (and dropped) at
	// the organization's next change. Organizations nobody waits on have none, so a change
	// there costs nothing.
	waits   map[string]chan struct{}
	online  map[string]int
	closer  closeOnce
	unwatch func()
}

// newHub returns a hub that follows the store's changes until Close.
func newHub(st store.Store) *hub {
	h := &hub{waits: map[string]chan struct{}{}, online: map[string]int{}}
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
}

func (h *hub) disconnect(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.online[id]--
	if h.online[id] <= 0 {
		delete(h.online, id)
	}
}
