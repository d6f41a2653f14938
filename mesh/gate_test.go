package mesh

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestQueueGate runs a gate in virtual time: a waiter goes on as soon as enough packets came
// out, when the gate's done channel closes, or after gateStall without progress, which also
// forgets the count.
func TestQueueGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newQueueGate(2)
		g.enter(2)
		start := time.Now()
		g.wait(nil) // at the limit: no wait
		require.Zero(t, time.Since(start))

		// Nothing comes out: the waiter gives up after gateStall and the count is forgotten.
		g.enter(3)
		g.wait(nil)
		require.Equal(t, gateStall, time.Since(start))
		require.Zero(t, g.held())

		// Packets coming out wake the waiter at once.
		g.enter(5)
		woke := make(chan struct{})
		start = time.Now()
		go func() {
			g.wait(nil)
			close(woke)
		}()
		synctest.Wait() // the waiter is waiting
		g.leave(2)
		synctest.Wait()
		select {
		case <-woke:
			t.Fatal("waiter went on over the limit")
		default:
		}
		g.leave(1)
		<-woke
		require.Zero(t, time.Since(start))
		require.EqualValues(t, 2, g.held())

		// Closing done releases a waiter, and the count stays.
		g.enter(3)
		done := make(chan struct{})
		woke = make(chan struct{})
		go func() {
			g.wait(done)
			close(woke)
		}()
		synctest.Wait()
		close(done)
		<-woke
		require.Zero(t, time.Since(start))
		require.EqualValues(t, 5, g.held())

		// More out than in is no credit: the surplus is forgotten at the next wait.
		g.leave(10)
		g.wait(nil)
		require.Zero(t, g.held())
		g.enter(3)
		start = time.Now()
		g.wait(nil)
		require.Equal(t, gateStall, time.Since(start), "the surplus counted as credit")
	})
}
