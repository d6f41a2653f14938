package watch

import (
	"slices"
	"sync"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// Hub calls a store's watchers with the changes published to it, in publication order, on a
// goroutine of its own: Publish only queues, so a slow watcher delays other watchers but never
// a committer. The queue is unbounded; watchers must not block.
type Hub struct {
	mu       sync.Mutex
	closed   bool
	queue    []store.Change
	wake     chan struct{} // capacity 1: a change is queued
	done     chan struct{} // closed when the goroutine has returned
	nextID   int
	watchers map[int]*watcher
}

type watcher struct {
	fn       func(store.Change)
	mu       sync.Mutex
	canceled bool
}

// NewHub starts a hub's goroutine; Close stops it.
func NewHub() *Hub {
	h := &Hub{wake: make(chan struct{}, 1), done: make(chan struct{}), watchers: map[int]*watcher{}}
	go h.run()
	return h
}

// Watch implements store.Store.Watch. cancel may be called from fn; once it has returned no
// call of fn starts (a call already started on the hub's goroutine may still be finishing).
func (h *Hub) Watch(fn func(store.Change)) (cancel func()) {
	w := &watcher{fn: fn}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return func() {}
	}
	id := h.nextID
	h.nextID++
	h.watchers[id] = w
	return func() {
		w.mu.Lock()
		w.canceled = true
		w.mu.Unlock()
		h.mu.Lock()
		delete(h.watchers, id)
		h.mu.Unlock()
	}
}

// Publish queues changes for the watchers and returns at once.
func (h *Hub) Publish(changes ...store.Change) {
	if len(changes) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.queue = append(h.queue, changes...)
	select { // under h.mu: Close closes wake
	case h.wake <- struct{}{}:
	default:
	}
}

// Close stops the goroutine, dropping changes not yet delivered, and waits for it to return
// (so it must not be called from a watcher). Watch after Close returns a no-op cancel.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		<-h.done
		return
	}
	h.closed = true
	h.queue = nil
	h.watchers = map[int]*watcher{}
	close(h.wake)
	h.mu.Unlock()
	<-h.done
}

func (h *Hub) run() {
	defer close(h.done)
	for range h.wake {
		for {
			h.mu.Lock()
			if h.closed || len(h.queue) == 0 {
				h.mu.Unlock()
				break
			}
			c := h.queue[0]
			h.queue[0] = store.Change{}
			h.queue = h.queue[1:]
			ids := make([]int, 0, len(h.watchers))
			for id := range h.watchers {
				ids = append(ids, id)
			}
			slices.Sort(ids) // oldest watcher first: a stable order helps reading logs
			ws := make([]*watcher, 0, len(ids))
			for _, id := range ids {
				ws = append(ws, h.watchers[id])
			}
			h.mu.Unlock()
			for _, w := range ws {
				w.call(c)
			}
		}
	}
}

// call runs the watcher's fn unless it was canceled: a cancel that returned before the check is
// always seen. w.mu is not held during fn, so that fn may cancel its own watch.
func (w *watcher) call(c store.Change) {
	w.mu.Lock()
	if w.canceled {
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	w.fn(c)
}
