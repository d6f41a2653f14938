package coordinator

// The peer-list cache: an organization's device list at one revision, read from the store and
// serialized to JSON once, then shared by every stream's sync event and every peer-list GET
// that needs that revision. A thousand streams syncing at once read the organization's devices
// once, not a thousand times.
//
// The key is (organization, OrganizationRevision, PrunedRevision): the device list changes only
// together with an untargeted event of its organization (devices.go, register.go), so the
// organization's highest such revision names the list's state — with PrunedRevision beside it,
// since pruning can lower that highest revision back to one an older state had. What changes
// without an event, a device going online or offline, is not in the cached JSON: each device's
// document is kept with the position of its "online" value, filled in when the list is sent.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// peerCacheSize bounds the cache: one entry per organization (an organization's newer list
// replaces its older one), the least recently used dropped beyond this many.
const peerCacheSize = 32

// peerKey names one state of an organization's device list.
type peerKey struct {
	org         string
	rev, pruned int64
}

// peerList is one organization's device list serialized: docs[i] is device i's JSON with
// Online false, whose value ("false", 5 bytes) starts at docs[i][at[i]].
type peerList struct {
	ids  []string
	docs [][]byte
	at   []int
	size int // bytes of docs

	ready chan struct{} // closed once filled, or once err is set
	err   error
}

// onlineValue is the serialized Online of a device that is not online.
var onlineValue = []byte(`"online":false`)

// newPeerList serializes ds (online left for later).
func (s *Server) newPeerList(ds []store.Device) (*peerList, error) {
	p := &peerList{ids: make([]string, len(ds)), docs: make([][]byte, len(ds)), at: make([]int, len(ds))}
	for i, d := range ds {
		ad := s.apiDevice(d)
		ad.Online = false
		doc, err := json.Marshal(ad)
		if err != nil {
			return nil, err
		}
		// `"online":` cannot occur inside a JSON string (its quotes would be escaped), so the
		// first match is the field.
		j := bytes.Index(doc, onlineValue)
		if j < 0 {
			return nil, fmt.Errorf("serialized device %s has no online field", d.ID)
		}
		p.ids[i], p.docs[i], p.at[i] = d.ID, doc, j+len(`"online":`)
		p.size += len(doc)
	}
	return p, nil
}

// appendJSON appends the list as a JSON array, each device's Online as the hub says now.
func (p *peerList) appendJSON(b []byte, h *hub) []byte {
	online := h.onlineOf(p.ids)
	b = append(b, '[')
	for i, doc := range p.docs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, doc[:p.at[i]]...)
		if online[i] {
			b = append(b, "true"...)
		} else {
			b = append(b, "false"...)
		}
		b = append(b, doc[p.at[i]+len("false"):]...)
	}
	return append(b, ']')
}

// peerCache holds the recently used peer lists. A list being loaded is in the cache already,
// so that concurrent readers of the same state wait for the one load instead of each loading.
type peerCache struct {
	mu      sync.Mutex
	entries map[peerKey]*peerList
	order   []peerKey // least recently used first
}

func newPeerCache() *peerCache { return &peerCache{entries: map[peerKey]*peerList{}} }

// get returns the list of key, calling load (in the caller's transaction) when no reader has
// loaded it yet. A load that failed is not cached: its waiters load for themselves.
func (c *peerCache) get(ctx context.Context, key peerKey, load func() (*peerList, error)) (*peerList, error) {
	c.mu.Lock()
	if p, ok := c.entries[key]; ok {
		c.touchLocked(key)
		c.mu.Unlock()
		select {
		case <-p.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if p.err == nil {
			return p, nil
		}
		return load()
	}
	p := &peerList{ready: make(chan struct{})}
	c.insertLocked(key, p)
	c.mu.Unlock()

	loaded, err := load()
	if err != nil {
		c.mu.Lock()
		if c.entries[key] == p {
			c.removeLocked(key)
		}
		c.mu.Unlock()
		p.err = err
		close(p.ready)
		return nil, err
	}
	p.ids, p.docs, p.at, p.size = loaded.ids, loaded.docs, loaded.at, loaded.size
	close(p.ready)
	return p, nil
}

// insertLocked adds p under key, dropping the organization's other lists (older states nobody
// will ask for again, since revisions only grow) and the least recently used beyond the bound.
func (c *peerCache) insertLocked(key peerKey, p *peerList) {
	for k := range c.entries {
		if k.org == key.org {
			c.removeLocked(k)
		}
	}
	c.entries[key] = p
	c.order = append(c.order, key)
	for len(c.order) > peerCacheSize {
		c.removeLocked(c.order[0])
	}
}

func (c *peerCache) touchLocked(key peerKey) {
	for i, k := range c.order {
		if k == key {
			c.order = append(append(c.order[:i:i], c.order[i+1:]...), key)
			return
		}
	}
}

func (c *peerCache) removeLocked(key peerKey) {
	delete(c.entries, key)
	for i, k := range c.order {
		if k == key {
			c.order = append(c.order[:i:i], c.order[i+1:]...)
			return
		}
	}
}

// peerListAt returns the organization's device list as tx sees it, from the cache when another
// reader already loaded that state.
func (s *Server) peerListAt(ctx context.Context, tx store.Tx, orgID string) (*peerList, error) {
	rev, err := tx.OrganizationRevision(ctx, orgID)
	if err != nil {
		return nil, err
	}
	pruned, err := tx.PrunedRevision(ctx)
	if err != nil {
		return nil, err
	}
	return s.peers.get(ctx, peerKey{org: orgID, rev: rev, pruned: pruned}, func() (*peerList, error) {
		ds, err := tx.ListDevices(ctx, orgID)
		if err != nil {
			return nil, err
		}
		return s.newPeerList(ds)
	})
}

// peerSync is a sync event to send: the organization's list, as of the log's revision rev.
type peerSync struct {
	orgID string
	rev   int64
	list  *peerList
	time  time.Time
}

// appendJSON appends the sync event's JSON: what json.Marshal makes of the api.Event with
// Devices set, but with the devices' documents copied from the cache.
func (ps *peerSync) appendJSON(b []byte, h *hub) ([]byte, error) {
	head, err := json.Marshal(api.Event{Revision: ps.rev, Type: api.EventSync, OrganizationID: ps.orgID, Time: ps.time})
	if err != nil {
		return nil, err
	}
	b = append(b, head[:len(head)-1]...) // without its closing brace
	b = append(b, `,"devices":`...)
	b = ps.list.appendJSON(b, h)
	return append(b, '}'), nil
}

// rawJSON is a JSON document a route answers as is (see writeJSON): the peer list, whose
// devices are copied from the cache rather than encoded again.
type rawJSON []byte
