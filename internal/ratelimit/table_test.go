package ratelimit

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestTakeAndRefill(t *testing.T) {
	tb := New[string](1, 3, 10) // 1/s, burst 3
	for i := range 3 {
		wait, undo := tb.Take("a", 1, t0)
		require.Zero(t, wait, "take %d within the burst", i)
		require.NotNil(t, undo)
	}
	wait, undo := tb.Take("a", 1, t0)
	assert.Equal(t, time.Second, wait, "the fourth waits for one token")
	assert.Nil(t, undo)
	assert.Equal(t, time.Second, tb.Wait("a", 1, t0), "Wait agrees and takes nothing")
	wait, _ = tb.Take("b", 1, t0)
	assert.Zero(t, wait, "another key has its own bucket")

	wait, _ = tb.Take("a", 1, t0.Add(time.Second))
	assert.Zero(t, wait, "a token refilled after a second")

	wait, _ = tb.Take("a", 4, t0.Add(time.Hour))
	assert.Equal(t, rate.InfDuration, wait, "more than the burst never fits")
}

func TestUndoGivesBack(t *testing.T) {
	tb := New[string](1, 2, 10)
	_, undo := tb.Take("a", 2, t0)
	wait, _ := tb.Take("a", 1, t0)
	require.Positive(t, wait)
	undo()
	wait, _ = tb.Take("a", 2, t0)
	assert.Zero(t, wait, "the undone tokens are back")
}

func TestUnlimited(t *testing.T) {
	var nilTable *Table[string]
	for _, tb := range []*Table[string]{nilTable, New[string](rate.Inf, 0, 1)} {
		for range 1000 {
			wait, undo := tb.Take("a", 1<<20, t0)
			require.Zero(t, wait)
			undo()
		}
		assert.Zero(t, tb.Wait("a", 1, t0))
		assert.Zero(t, tb.Len())
	}
}

// TestMemoryBounded: a flood of distinct keys never holds more than maxKeys buckets; the keys
// that find the table full share one bucket, so the flood is throttled as a whole; buckets
// that have refilled are dropped.
func TestMemoryBounded(t *testing.T) {
	const maxKeys = 64
	tb := New[string](1, 2, maxKeys)
	var refused int
	for i := range 100 * maxKeys {
		wait, _ := tb.Take(fmt.Sprint("key-", i), 1, t0)
		if wait > 0 {
			refused++
		}
		require.LessOrEqual(t, tb.Len(), maxKeys)
	}
	assert.Equal(t, maxKeys, tb.Len())
	assert.Equal(t, 100*maxKeys-maxKeys-2, refused, "beyond the table, all keys share one burst of 2")

	// Two seconds on, every bucket has refilled: the next take sweeps them away, and a key that
	// found the table full before gets a bucket of its own.
	later := t0.Add(2 * time.Second)
	wait, _ := tb.Take("fresh", 1, later)
	assert.Zero(t, wait)
	assert.Equal(t, 1, tb.Len(), "refilled buckets dropped")

	// A bucket in use survives sweeps; an idle one goes at the next sweep after sweepIdle.
	_, _ = tb.Take("busy", 2, later.Add(sweepIdle))
	_, _ = tb.Take("other", 1, later.Add(sweepIdle))
	assert.Equal(t, time.Second, tb.Wait("busy", 1, later.Add(sweepIdle)), "busy keeps its state")
	assert.Equal(t, 2, tb.Len(), "busy and other")
}
