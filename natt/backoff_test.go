// backoff_test.go tests the delays of a peer's timers, without timers.

package natt

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRestartDelayBounds(t *testing.T) {
	cfg := fastConfig()
	cfg.setDefaults()
	ms := time.Millisecond
	for attempt, want := range []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second} {
		for range 20 {
			assert.InDelta(t, want, restartDelay(&cfg, attempt), float64(want/10), "attempt %d", attempt)
		}
	}
	assert.LessOrEqual(t, restartDelay(&cfg, 1000), cfg.BackoffMax+cfg.BackoffMax/10, "the cap")
}

func TestOfferRetryDelay(t *testing.T) {
	cfg := fastConfig() // OfferTimeout 300ms, BackoffMax 1s
	ms := time.Millisecond
	for tries, want := range map[int]time.Duration{1: 300 * ms, 2: 600 * ms, 3: time.Second, 8: time.Second} {
		assert.Equal(t, want, offerRetryDelay(&cfg, tries), "after transmission %d", tries)
	}
}

func TestJitter(t *testing.T) {
	assert.Zero(t, jitter(0))
	seen := map[time.Duration]bool{}
	for range 100 {
		d := jitter(time.Second)
		assert.InDelta(t, time.Second, d, float64(100*time.Millisecond))
		seen[d] = true
	}
	assert.Greater(t, len(seen), 1, "no jitter")
	assert.Equal(t, 8*time.Second, doubled(time.Second, 3, time.Minute))
	assert.Equal(t, time.Minute, doubled(time.Second, 100, time.Minute))
}
