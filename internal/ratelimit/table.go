// Package ratelimit keeps token buckets (golang.org/x/time/rate) by key in bounded memory: the
// coordinator's limits per principal and per source address, and the relay's limit on failed
// authentications per source address.
//
// A bucket that has refilled to its burst is indistinguishable from a new one, so dropping it
// loses nothing: a [Table] drops such buckets now and then, and at once when it is full. When
// it is full of buckets that are all in use (a flood of distinct keys), keys without a bucket
// share one overflow bucket, so the flood as a whole gets one key's budget and memory stays at
// the table's size.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Intervals of the sweep that drops refilled buckets.
const (
	sweepIdle = time.Minute // at most this long between sweeps while the table is in use
	sweepFull = time.Second // at most one sweep this often while the table is full
)

// Table is a set of token buckets of one rate and burst, one per key, holding at most a fixed
// number of buckets. A nil *Table, or one of rate [rate.Inf], allows everything. It is safe for
// concurrent use.
type Table[K comparable] struct {
	limit   rate.Limit
	burst   int
	maxKeys int

	mu        sync.Mutex
	buckets   map[K]*rate.Limiter
	overflow  *rate.Limiter // shared by the keys that find the table full
	lastSweep time.Time
}

// New makes a table of buckets that refill at limit tokens per second and hold at most burst,
// keeping at most maxKeys buckets (at least 1).
func New[K comparable](limit rate.Limit, burst, maxKeys int) *Table[K] {
	maxKeys = max(maxKeys, 1)
	return &Table[K]{limit: limit, burst: burst, maxKeys: maxKeys,
		buckets: make(map[K]*rate.Limiter), overflow: rate.NewLimiter(limit, burst)}
}

// Take takes n tokens from key's bucket at now if they are there, and returns 0 and a function
// that gives them back (for a caller that a later limit refuses). Otherwise it takes nothing
// and returns how long until n tokens will be there: [rate.InfDuration] when n exceeds the
// burst.
func (t *Table[K]) Take(key K, n int, now time.Time) (wait time.Duration, undo func()) {
	if t.unlimited() {
		return 0, func() {}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	lim := t.bucketLocked(key, now, true)
	r := lim.ReserveN(now, n)
	if !r.OK() {
		return rate.InfDuration, nil
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, nil
	}
	return 0, func() { r.CancelAt(now) }
}

// Wait returns how long until key's bucket holds n tokens at now (0 if it does), taking none.
func (t *Table[K]) Wait(key K, n int, now time.Time) time.Duration {
	if t.unlimited() {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	lim := t.bucketLocked(key, now, false)
	if lim == nil {
		return 0 // a new bucket would be full
	}
	if n > t.burst {
		return rate.InfDuration
	}
	missing := float64(n) - lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	if t.limit <= 0 {
		return rate.InfDuration
	}
	return time.Duration(math.Ceil(missing / float64(t.limit) * float64(time.Second)))
}

// Len returns the number of buckets held.
func (t *Table[K]) Len() int {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.buckets)
}

func (t *Table[K]) unlimited() bool { return t == nil || t.limit == rate.Inf }

// bucketLocked returns key's bucket, the overflow bucket when the table is full, or (without
// create) nil for a key that has no bucket and would get a new one.
func (t *Table[K]) bucketLocked(key K, now time.Time, create bool) *rate.Limiter {
	t.sweepLocked(now)
	if lim, ok := t.buckets[key]; ok {
		return lim
	}
	if len(t.buckets) >= t.maxKeys {
		return t.overflow
	}
	if !create {
		return nil
	}
	lim := rate.NewLimiter(t.limit, t.burst)
	t.buckets[key] = lim
	return lim
}

// sweepLocked drops the buckets that have refilled, at most once per sweepIdle, or per
// sweepFull while the table is full.
func (t *Table[K]) sweepLocked(now time.Time) {
	since := now.Sub(t.lastSweep)
	if since < sweepIdle && (len(t.buckets) < t.maxKeys || since < sweepFull) {
		return
	}
	t.lastSweep = now
	for k, lim := range t.buckets {
		if lim.TokensAt(now) >= float64(t.burst) {
			delete(t.buckets, k)
		}
	}
}
