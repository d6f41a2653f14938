// sendqueue_test.go tests a peer's signal sender in virtual time: order, its bound, and the
// final signal's deadline when the coordinator is stuck.

package natt

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
)

// sentLog records what a sender sent.
type sentLog struct {
	mu   sync.Mutex
	sent []string
}

func (l *sentLog) signal(_ context.Context, b []byte) error {
	l.mu.Lock()
	l.sent = append(l.sent, string(b))
	l.mu.Unlock()
	return nil
}

func (l *sentLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.sent...)
}

// runSender runs s until it stops; the returned channel is closed then.
func runSender(s *sender) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.run()
	}()
	return done
}

func TestSenderKeepsOrderAndDropsTheOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log sentLog
		s := newSender(t.Context(), log.signal, slog.New(slog.DiscardHandler))
		var want []string
		for i := range maxOutbox + 10 {
			s.push(fmt.Appendf(nil, "%d", i))
			if i >= 10 {
				want = append(want, fmt.Sprint(i))
			}
		}
		done := runSender(s)
		synctest.Wait()
		assert.Equal(t, want, log.all(), "the newest maxOutbox, in order")
		s.push([]byte("later"))
		synctest.Wait()
		s.stop([]byte("final"))
		<-done
		assert.Equal(t, append(want, "later", "final"), log.all())
		s.push([]byte("after stop"))
		assert.Len(t, log.all(), len(want)+2, "nothing is sent after stop")
	})
}

// A coordinator that does not answer holds the final signal for finalSignalWait, no longer; what
// was queued behind a stuck signal is dropped at stop.
func TestSenderFinalSignalDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var mu sync.Mutex
		var sent []string
		stuck := func(ctx context.Context, b []byte) error {
			mu.Lock()
			sent = append(sent, string(b))
			mu.Unlock()
			<-ctx.Done()
			return ctx.Err()
		}
		s := newSender(ctx, stuck, slog.New(slog.DiscardHandler))
		done := runSender(s)
		s.push([]byte("offer"))
		s.push([]byte("candidate"))
		synctest.Wait() // the coordinator is stuck on the offer
		start := time.Now()
		s.stop([]byte("restart"))
		cancel() // the peer goes: the offer's send ends
		<-done
		assert.Equal(t, finalSignalWait, time.Since(start))
		mu.Lock()
		assert.Equal(t, []string{"offer", "restart"}, sent)
		mu.Unlock()
	})
}
