package storetest

// Several stores on one database, as several coordinator replicas run: revisions stay
// gap-free in commit order, so a reader resuming after the last revision it saw never misses
// one; with a shared engine, watches and locks span the replicas.

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func testReplicas(t *testing.T, s store.Store, reopen ReopenFunc) {
	replicas := []store.Store{s, reopen(t), reopen(t)}
	const writersEach, appendsEach = 2, 15
	ctx, cancel := context.WithTimeout(context.Background(), 4*waitFor)
	defer cancel()

	var (
		mu        sync.Mutex
		committed []int64
		writing   atomic.Int32
		wg        sync.WaitGroup
		errs      = make(chan error, len(replicas)*writersEach+1)
	)
	writing.Store(int32(len(replicas) * writersEach))
	for _, r := range replicas {
		for range writersEach {
			wg.Go(func() {
				defer writing.Add(-1)
				for range appendsEach {
					var rev int64
					err := r.Tx(ctx, func(tx store.Tx) error {
						var err error
						// Read, then write: the pattern that makes engines serialize or retry.
						if _, err = tx.LatestRevision(ctx); err != nil {
							return err
						}
						rev, err = tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", Type: "x", CreatedAt: t0})
						return err
					})
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					committed = append(committed, rev)
					mu.Unlock()
				}
			})
		}
	}
	// The reader resumes from the last revision it saw, in small pages, on a replica of its own,
	// while the writers go on; it stops once they are done and it has read to the end.
	var seen []int64
	wg.Go(func() {
		var after int64
		for {
			done := writing.Load() == 0
			var page []store.Event
			err := replicas[2].View(ctx, func(tx store.Tx) error {
				var err error
				page, err = tx.ListEvents(ctx, "o1", "", after, 7)
				return err
			})
			if err != nil {
				errs <- err
				return
			}
			for _, e := range page {
				seen = append(seen, e.Revision)
				after = e.Revision
			}
			if done && len(page) == 0 {
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "replica transaction")
	}
	require.Len(t, committed, len(replicas)*writersEach*appendsEach, "appends committed")
	slices.Sort(committed)
	assert.Equal(t, committed, seen, "revisions the resuming reader saw: every committed one, in order")
	for i := 1; i < len(committed); i++ {
		if !assert.Equal(t, committed[i-1]+1, committed[i], "revisions are gap-free") {
			break
		}
	}
	for i, r := range replicas {
		got := read(t, r, func(ctx context.Context, tx store.Tx) (int64, error) { return tx.LatestRevision(ctx) })
		assert.Equal(t, committed[len(committed)-1], got, "LatestRevision on replica %d", i)
	}
}

// testSharedWatch: a commit on one replica reaches the watchers of every replica.
func testSharedWatch(t *testing.T, s store.Store, reopen ReopenFunc) {
	other := reopen(t)
	here, _ := watch(t, s)
	there, _ := watch(t, other)
	var revs []int64
	for i, r := range []store.Store{s, other, s} {
		rev := read(t, r, func(ctx context.Context, tx store.Tx) (int64, error) {
			return appendSignal(ctx, tx, "o1", []string{"d1", "d2", "d3"}[i], t0)
		})
		revs = append(revs, rev)
	}
	want := []store.Change{
		{OrganizationID: "o1", Revision: revs[0], TargetDeviceID: "d1"},
		{OrganizationID: "o1", Revision: revs[1], TargetDeviceID: "d2"},
		{OrganizationID: "o1", Revision: revs[2], TargetDeviceID: "d3"},
	}
	assert.Equal(t, want, here.wait(t, 3, "watcher of the first replica"), "changes on the first replica")
	assert.Equal(t, want, there.wait(t, 3, "watcher of the second replica"), "changes on the second replica")
}

// testSharedTryLock: a lock held on one replica is held for all, and goes with its holder.
func testSharedTryLock(t *testing.T, s store.Store, reopen ReopenFunc) {
	ctx := context.Background()
	other := reopen(t)
	release, ok, err := s.TryLock(ctx, "sweep")
	require.NoError(t, err)
	require.True(t, ok, "TryLock on the first replica")
	_, ok, err = other.TryLock(ctx, "sweep")
	require.NoError(t, err)
	assert.False(t, ok, "TryLock on the second replica while the first holds the lock")
	release()
	release2, ok, err := other.TryLock(ctx, "sweep")
	require.NoError(t, err)
	require.True(t, ok, "TryLock on the second replica after release")

	// A holder that goes away (here: closes) loses the lock.
	require.NoError(t, other.Close())
	release2() // after Close: harmless
	require.Eventually(t, func() bool {
		rel, ok, err := s.TryLock(ctx, "sweep")
		if err == nil && ok {
			rel()
		}
		return ok && !errors.Is(err, context.Canceled)
	}, waitFor, 10*time.Millisecond, "TryLock after the holder closed")
}
