package storetest

// Watch: changes after commit, with the right ids, in commit order; none for rollbacks or
// after cancel.

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// recorder collects the changes a Watch delivers. Changes with no organization ("re-read
// everything", which an engine may send after losing notifications) are counted apart.
type recorder struct {
	mu      sync.Mutex
	changes []store.Change
	resets  int
}

func watch(t *testing.T, s store.Store) (*recorder, func()) {
	t.Helper()
	r := &recorder{}
	cancel := s.Watch(func(c store.Change) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if c.OrganizationID == "" {
			r.resets++
			return
		}
		r.changes = append(r.changes, c)
	})
	t.Cleanup(cancel)
	return r, cancel
}

func (r *recorder) got() []store.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.changes)
}

// waitFor waits until the recorder holds n changes and returns them.
func (r *recorder) wait(t *testing.T, n int, what string) []store.Change {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.got()) >= n }, waitFor, time.Millisecond,
		"%s: want %d changes, have %v", what, n, r.got())
	return r.got()
}

func testWatch(t *testing.T, s store.Store, _ ReopenFunc) {
	r, _ := watch(t, s)
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.CreateUser(ctx, user("x1", t0)) })

	// One change per transaction and organization: the highest revision, and the target when
	// every event appended to that organization had the same one.
	var want [][]store.Change
	commit := func(appends ...store.Event) {
		t.Helper()
		byOrg := map[string]*store.Change{}
		var order []string
		do(t, s, func(ctx context.Context, tx store.Tx) error {
			byOrg, order = map[string]*store.Change{}, nil // a retried attempt starts over
			for _, e := range appends {
				var rev int64
				var err error
				if e.Type == "signal" {
					rev, err = tx.AppendSignal(ctx, e)
				} else {
					rev, err = tx.AppendEvent(ctx, e)
				}
				if err != nil {
					return err
				}
				c, ok := byOrg[e.OrganizationID]
				if !ok {
					c = &store.Change{OrganizationID: e.OrganizationID, TargetDeviceID: e.TargetDeviceID}
					byOrg[e.OrganizationID] = c
					order = append(order, e.OrganizationID)
				} else if c.TargetDeviceID != e.TargetDeviceID {
					c.TargetDeviceID = ""
				}
				c.Revision = rev
			}
			return nil
		})
		var cs []store.Change
		for _, o := range order {
			cs = append(cs, *byOrg[o])
		}
		want = append(want, cs)
	}
	ev := func(org, target, typ string) store.Event {
		return store.Event{OrganizationID: org, TargetDeviceID: target, Type: typ, Data: []byte(`{}`), CreatedAt: t0}
	}
	commit(ev("o1", "", "x"), ev("o1", "", "x"))
	commit(ev("o2", "d2", "signal"))
	commit(ev("o1", "d1", "x"), ev("o1", "d1", "signal"))
	commit(ev("o1", "d1", "signal"), ev("o1", "d2", "signal"))
	commit(ev("o1", "d1", "signal"), ev("o1", "", "x"))
	commit(ev("o2", "", "x"), ev("o1", "d1", "signal"), ev("o2", "", "x"))

	n := 0
	for _, cs := range want {
		n += len(cs)
	}
	got := r.wait(t, n, "Watch")
	require.Len(t, got, n, "changes delivered")
	// Transactions in commit order; within one, organizations in any order.
	i := 0
	for k, cs := range want {
		assert.ElementsMatch(t, cs, got[i:i+len(cs)], "changes of transaction %d", k)
		i += len(cs)
	}
}

func testWatchRollbackAndCancel(t *testing.T, s store.Store, _ ReopenFunc) {
	r1, cancel1 := watch(t, s)
	r2, _ := watch(t, s)

	// A rolled-back append (to o2) tells nobody; the next commit (to o1) does.
	err := try(s, func(ctx context.Context, tx store.Tx) error {
		if err := appendEvent(ctx, tx, "o2"); err != nil {
			return err
		}
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	commitEvent(t, s, "o1")
	for _, r := range []*recorder{r1, r2} {
		got := r.wait(t, 1, "after a rollback and a commit")
		require.Len(t, got, 1, "changes after a rollback and a commit")
		assert.Equal(t, "o1", got[0].OrganizationID, "the change is the commit's, not the rollback's")
	}

	// After cancel (twice is harmless) nothing more reaches r1; r2 still hears.
	cancel1()
	cancel1()
	commitEvent(t, s, "o2")
	r2.wait(t, 2, "remaining watcher after another canceled")
	assert.Len(t, r1.got(), 1, "changes of a canceled watch")

	// A watcher may cancel itself from its callback.
	var once sync.Once
	calls := make(chan store.Change, 10)
	var cancelSelf func()
	ready := make(chan struct{})
	cancelSelf = s.Watch(func(c store.Change) {
		<-ready
		calls <- c
		once.Do(cancelSelf)
	})
	close(ready)
	commitEvent(t, s, "o1")
	commitEvent(t, s, "o1")
	r2.wait(t, 4, "barrier: the other watcher heard both commits")
	assert.Len(t, calls, 1, "calls of a watcher that canceled itself in its first call")
}

func testWatchOrder(t *testing.T, s store.Store, _ ReopenFunc) {
	r, _ := watch(t, s)
	const commits = 30
	var revs []int64
	for i := range commits {
		rev := read(t, s, func(ctx context.Context, tx store.Tx) (int64, error) {
			return tx.AppendEvent(ctx, store.Event{OrganizationID: []string{"o1", "o2"}[i%2], Type: "x", CreatedAt: t0})
		})
		revs = append(revs, rev)
	}
	got := r.wait(t, commits, "Watch of sequential commits")
	gotRevs := make([]int64, 0, len(got))
	for _, c := range got {
		gotRevs = append(gotRevs, c.Revision)
	}
	assert.Equal(t, revs, gotRevs, "revisions in commit order")
}

func testTryLock(t *testing.T, s store.Store, _ ReopenFunc) {
	ctx := context.Background()
	release, ok, err := s.TryLock(ctx, "sweep")
	require.NoError(t, err)
	require.True(t, ok, "TryLock of a free lock")
	_, ok, err = s.TryLock(ctx, "sweep")
	require.NoError(t, err)
	assert.False(t, ok, "TryLock of a held lock")
	other, ok, err := s.TryLock(ctx, "another")
	require.NoError(t, err)
	assert.True(t, ok, "TryLock of another name")
	other()

	release()
	release() // harmless
	again, ok, err := s.TryLock(ctx, "sweep")
	require.NoError(t, err)
	assert.True(t, ok, "TryLock after release")
	// The old release must not free the new holder's lock.
	release()
	_, ok, err = s.TryLock(ctx, "sweep")
	require.NoError(t, err)
	assert.False(t, ok, "TryLock after a stale release")
	again()

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err = s.TryLock(canceled, "sweep")
	assert.ErrorIs(t, err, context.Canceled, "TryLock with a canceled context")
}
