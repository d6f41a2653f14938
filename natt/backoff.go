// backoff.go holds the delays of a peer's timers as pure functions: the restart backoff, the
// retransmission of an unanswered offer, and the jitter that keeps two sides out of lockstep.

package natt

import (
	"math/rand/v2"
	"time"
)

// doubled returns base doubled n times, capped at limit.
func doubled(base time.Duration, n int, limit time.Duration) time.Duration {
	d := base
	for i := 0; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// jitter returns d moved at random by up to ±10 %, so that both sides of a peer do not act in
// lockstep.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

// restartDelay returns the delay before restart number attempt (0-based): BackoffMin doubled per
// attempt up to BackoffMax, jittered.
func restartDelay(cfg *Config, attempt int) time.Duration {
	return jitter(doubled(cfg.BackoffMin, attempt, cfg.BackoffMax))
}

// offerRetryDelay returns the wait after transmission number tries (1-based) of an unanswered
// offer: OfferTimeout doubled per transmission, up to BackoffMax.
func offerRetryDelay(cfg *Config, tries int) time.Duration {
	return doubled(cfg.OfferTimeout, tries-1, cfg.BackoffMax)
}
