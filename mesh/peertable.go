package mesh

// This file holds the Bind's view of its peers: peerState, and the table that finds a peer by
// public key or by one of the handshake indices this node allocated for it.

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/nexodus-sdk/nexodus/key"
)

// indicesPerPeer is how many of our handshake indices are remembered per peer: more than
// wireguard-go's 18 handshake attempts plus its 3 keypairs.
const indicesPerPeer = 32

// peerState is the Bind's view of one peer.
type peerState struct {
	key  key.Key
	hex  string    // key in the UAPI's form: the key endpoint's DstToString
	ep   *endpoint // the key endpoint: what wireguard-go is configured with
	path pathSelector

	observed endpointCache // source addresses seen but not (yet) the path; its own lock

	// indices is the handshake indices this node allocated for the peer. Guarded by
	// peerTable.mu.
	indices indexRing

	// active is set once wireguard-go runs the peer (after the UAPI call that adds it). Until
	// then its initiations are held for replay, as for unknown keys. Guarded by
	// heldInitiations.mu (see handshake.go).
	active bool

	initSentAt atomic.Int64 // unix ns of our last initiation attempt (early retries); 0 once answered

	crossMu sync.Mutex
	cross   crossing // the crossing tie-break (crossing.go); guarded by crossMu
}

func newPeerState(pub key.Key) *peerState {
	p := &peerState{key: pub, hex: pub.Hex()}
	p.ep = &endpoint{peer: p}
	p.observed = newEndpointCache(p, maxObservedPerPeer)
	return p
}

// observedEndpoint returns the endpoint for a packet of the peer from src, which is not its
// path, stamped with the path epoch of its arrival.
func (p *peerState) observedEndpoint(src netip.AddrPort) *endpoint {
	epoch := p.path.epoch()
	e := p.observed.get(src)
	e.epoch.Store(epoch)
	return e
}

// indexRing is the last indicesPerPeer handshake indices allocated for one peer.
type indexRing struct {
	idx [indicesPerPeer]uint32
	n   int // indices ever added
}

// add records idx and returns the index it displaced, if the ring was full.
func (r *indexRing) add(idx uint32) (old uint32, displaced bool) {
	slot := r.n % indicesPerPeer
	old, displaced = r.idx[slot], r.n >= indicesPerPeer
	r.idx[slot] = idx
	r.n++
	return old, displaced
}

// all returns the indices in the ring.
func (r *indexRing) all() []uint32 { return r.idx[:min(r.n, indicesPerPeer)] }

// peerTable is the Bind's peers by public key and by handshake index. mu guards both maps and
// every peer's indices; the read lock is on the receive path of every datagram (see indexCache).
type peerTable struct {
	mu      sync.RWMutex
	byKey   map[key.Key]*peerState
	byIndex map[uint32]*peerState
}

func newPeerTable() peerTable {
	return peerTable{byKey: make(map[key.Key]*peerState), byIndex: make(map[uint32]*peerState)}
}

func (t *peerTable) get(pub key.Key) *peerState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byKey[pub]
}

// upsert returns the peer with this key, created if it is new.
func (t *peerTable) upsert(pub key.Key) (p *peerState, created bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p = t.byKey[pub]; p != nil {
		return p, false
	}
	p = newPeerState(pub)
	t.byKey[pub] = p
	return p, true
}

// remove forgets the peer and its handshake indices.
func (t *peerTable) remove(pub key.Key) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.byKey[pub]
	if p == nil {
		return
	}
	delete(t.byKey, pub)
	for _, idx := range p.indices.all() {
		if t.byIndex[idx] == p {
			delete(t.byIndex, idx)
		}
	}
}

// rememberIndex records that idx is one of our handshake indices for peer p, unless p was
// removed meanwhile. Caller: Send.
func (t *peerTable) rememberIndex(p *peerState, idx uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byKey[p.key] != p {
		return
	}
	if old, displaced := p.indices.add(idx); displaced && t.byIndex[old] == p {
		delete(t.byIndex, old)
	}
	t.byIndex[idx] = p
}

// indexCache remembers the last receiver index looked up while demultiplexing one batch of
// datagrams read together, which mostly belong to one session: the lookup takes the table's
// read lock, two atomic operations per datagram otherwise. It lives for one batch only, so a peer
// removed or an index reused meanwhile is seen from the next batch on, as if the batch had been
// looked up a moment earlier.
type indexCache struct {
	idx   uint32
	p     *peerState
	valid bool
}

// byIdx returns the peer a receiver index belongs to, or nil. cache may be nil.
func (t *peerTable) byIdx(idx uint32, cache *indexCache) *peerState {
	if cache != nil && cache.valid && cache.idx == idx {
		return cache.p
	}
	t.mu.RLock()
	p := t.byIndex[idx]
	t.mu.RUnlock()
	if cache != nil {
		*cache = indexCache{idx: idx, p: p, valid: true}
	}
	return p
}
