package storetest

// The event log: revisions, filtering by target, pruning, and the subscriptions that hear of
// commits that appended events (and only of those).

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func revs(evs []store.Event) []int64 {
	out := make([]int64, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.Revision)
	}
	return out
}

func equalRevs(t *testing.T, what string, got []store.Event, want []int64) {
	t.Helper()
	if len(got) != 0 || len(want) != 0 {
		assert.Equal(t, want, revs(got), "%s: revisions", what)
	}
}

// listEvents reads events of the organization in its own transaction.
func listEvents(t *testing.T, s store.Store, orgID, target string, after int64, limit int) []store.Event {
	t.Helper()
	return read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Event, error) {
		return tx.ListEvents(ctx, orgID, target, after, limit)
	})
}

func testEvents(t *testing.T, s store.Store, _ ReopenFunc) {
	require.EqualValues(t, 0, readTx(t, s, store.Tx.LatestRevision), "LatestRevision of empty store")
	require.EqualValues(t, 0, readTx(t, s, store.Tx.PrunedRevision), "PrunedRevision of empty store")

	// Interleaved organizations and targets; revisions must increase across all of them.
	in := []store.Event{
		{OrganizationID: "o1", Type: "device.added", Data: []byte(`{"id":"d1"}`), CreatedAt: at(time.Second)},
		{OrganizationID: "o2", Type: "device.added", Data: []byte(`{"id":"d9"}`), CreatedAt: at(2 * time.Second)},
		{OrganizationID: "o1", TargetDeviceID: "d1", Type: "signal", Data: []byte{0, 1, 2, 0xff}, CreatedAt: at(3 * time.Second)},
		{OrganizationID: "o1", TargetDeviceID: "d2", Type: "signal", Data: []byte(`"for d2"`), CreatedAt: at(4 * time.Second)},
		{OrganizationID: "o1", Type: "device.removed", CreatedAt: at(5*time.Second + time.Microsecond)},
	}
	var got []int64
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for i := range in {
			rev, err := tx.AppendEvent(ctx, in[i])
			if err != nil {
				return err
			}
			got = append(got, rev)
		}
		return nil
	})
	// A later transaction continues the sequence.
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		e := store.Event{OrganizationID: "o2", Type: "device.updated", Data: []byte(`{}`), CreatedAt: at(6 * time.Second)}
		rev, err := tx.AppendEvent(ctx, e)
		in = append(in, e)
		got = append(got, rev)
		return err
	})
	require.Positive(t, got[0], "AppendEvent revisions")
	require.IsIncreasing(t, got, "AppendEvent revisions")
	for i := range got {
		in[i].Revision = got[i]
	}
	latest := readTx(t, s, store.Tx.LatestRevision)
	assert.Equal(t, got[len(got)-1], latest, "LatestRevision")

	all := listEvents(t, s, "o1", "d1", 0, 100)
	equalRevs(t, "ListEvents o1 for d1", all, []int64{got[0], got[2], got[4]})
	if len(all) == 3 {
		equal(t, "ListEvents record (targeted, binary data)", all[1], in[2])
		equal(t, "ListEvents record (no data)", all[2], in[4])
	}
	equalRevs(t, "ListEvents o1 untargeted", listEvents(t, s, "o1", "", 0, 100), []int64{got[0], got[4]})
	equalRevs(t, "ListEvents o1 for d2", listEvents(t, s, "o1", "d2", 0, 100), []int64{got[0], got[3], got[4]})
	equalRevs(t, "ListEvents o1 for unknown device", listEvents(t, s, "o1", "zz", 0, 100), []int64{got[0], got[4]})
	equalRevs(t, "ListEvents o2", listEvents(t, s, "o2", "", 0, 100), []int64{got[1], got[5]})
	equalRevs(t, "ListEvents o2 for d1 (targets never cross organizations)", listEvents(t, s, "o2", "d1", 0, 100), []int64{got[1], got[5]})
	equalRevs(t, "ListEvents after", listEvents(t, s, "o1", "d1", got[0], 100), []int64{got[2], got[4]})
	equalRevs(t, "ListEvents after a revision of another organization", listEvents(t, s, "o1", "d1", got[1], 100), []int64{got[2], got[4]})
	equalRevs(t, "ListEvents limit", listEvents(t, s, "o1", "d1", 0, 2), []int64{got[0], got[2]})
	equalRevs(t, "ListEvents after+limit", listEvents(t, s, "o1", "d2", got[0], 1), []int64{got[3]})
	equalRevs(t, "ListEvents limit 0 (no limit)", listEvents(t, s, "o1", "d1", 0, 0), []int64{got[0], got[2], got[4]})
	equalRevs(t, "ListEvents after the latest", listEvents(t, s, "o1", "d1", latest, 100), nil)
	equalRevs(t, "ListEvents unknown organization", listEvents(t, s, "nope", "", 0, 100), nil)
}

func testPruneEvents(t *testing.T, s store.Store, reopen ReopenFunc) {
	var r []int64
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for i := 0; i < 6; i++ {
			o := []string{"o1", "o2"}[i%2]
			rev, err := tx.AppendEvent(ctx, store.Event{OrganizationID: o, Type: "x", CreatedAt: at(time.Duration(i) * time.Minute)})
			if err != nil {
				return err
			}
			r = append(r, rev)
		}
		return nil
	})
	prune := func(before time.Time) int64 {
		return getOne(t, s, store.Tx.PruneEvents, before)
	}
	pruned := func() int64 {
		return readTx(t, s, store.Tx.PrunedRevision)
	}
	assert.EqualValues(t, 0, prune(at(-time.Hour)), "PruneEvents before everything deleted")
	assert.EqualValues(t, 0, pruned(), "PrunedRevision after pruning nothing")
	// Strictly before: the event at exactly 2 minutes stays. The cutoff is given in another zone.
	assert.EqualValues(t, 2, prune(at(2*time.Minute).In(time.UTC)), "PruneEvents deleted")
	assert.EqualValues(t, r[1], pruned(), "PrunedRevision")
	evs := listEvents(t, s, "o1", "", 0, 0)
	equalRevs(t, "o1 after prune", evs, []int64{r[2], r[4]})
	evs = listEvents(t, s, "o2", "", 0, 0)
	equalRevs(t, "o2 after prune", evs, []int64{r[3], r[5]})

	// Pruning everything keeps LatestRevision, and new revisions never reuse old numbers.
	assert.EqualValues(t, 4, prune(at(time.Hour)), "PruneEvents deleted")
	assert.EqualValues(t, r[5], pruned(), "PrunedRevision")
	assert.EqualValues(t, r[5], readTx(t, s, store.Tx.LatestRevision), "LatestRevision after pruning everything")
	next := read(t, s, func(ctx context.Context, tx store.Tx) (int64, error) {
		return tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", Type: "x", CreatedAt: at(-time.Hour)})
	})
	assert.Greater(t, next, r[5], "AppendEvent after pruning")
	// Pruning goes by creation time, not revision: the back-dated newest event goes, and
	// PrunedRevision follows the highest revision deleted.
	assert.EqualValues(t, 1, prune(at(-time.Minute)), "PruneEvents of the back-dated event deleted")
	assert.EqualValues(t, next, pruned(), "PrunedRevision")

	// Both numbers survive a restart.
	require.NoError(t, s.Close())
	s = reopen(t)
	assert.EqualValues(t, next, pruned(), "PrunedRevision after reopen")
	assert.EqualValues(t, next, readTx(t, s, store.Tx.LatestRevision), "LatestRevision after reopen")
}

// waitNotified fails unless ch delivers within waitFor.
func waitNotified(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitFor):
		t.Fatalf("%s: no notification within %v", what, waitFor)
	}
}

// notPending fails if ch has a value ready now.
func notPending(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	assert.Empty(t, ch, "%s: unexpected notification", what)
}

func testWatchWakeups(t *testing.T, s store.Store, _ ReopenFunc) {
	ch1, cancel1 := subscribe(s)
	defer cancel1()
	ch2, cancel2 := subscribe(s)
	defer cancel2()
	notPending(t, ch1, "new subscription")

	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.CreateUser(ctx, user("x1", t0)) })
	notPending(t, ch1, "after a Tx that appended no event")

	commitEvent(t, s, "o1")
	waitNotified(t, ch1, "subscriber 1 after a committed AppendEvent")
	waitNotified(t, ch2, "subscriber 2 after a committed AppendEvent")

	// Nobody reading must not block writers; pending wake-ups coalesce.
	for i := 0; i < 20; i++ {
		commitEvent(t, s, []string{"o1", "o2"}[i%2])
	}
	waitNotified(t, ch1, "after many commits")
	assert.LessOrEqual(t, len(ch1), 1, "notifications pending (coalesced)")
	waitNotified(t, ch2, "subscriber 2 after many commits")

	// After cancel nothing more arrives, a second cancel is harmless, and others still hear.
	for len(ch1) > 0 {
		<-ch1
	}
	cancel1()
	cancel1()
	commitEvent(t, s, "o1")
	waitNotified(t, ch2, "remaining subscriber after another subscriber canceled")
	notPending(t, ch1, "canceled subscription")

	// A subscription taken after events were appended hears only later commits.
	ch3, cancel3 := subscribe(s)
	defer cancel3()
	notPending(t, ch3, "subscription taken after earlier commits")
	commitEvent(t, s, "o2")
	waitNotified(t, ch3, "late subscriber")
}

func testWatchRollback(t *testing.T, s store.Store, _ ReopenFunc) {
	ch, cancel := subscribe(s)
	defer cancel()

	err := try(s, func(ctx context.Context, tx store.Tx) error {
		if err := appendEvent(ctx, tx, "o1"); err != nil {
			return err
		}
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	notPending(t, ch, "after a rolled-back AppendEvent")

	// A failed commit-time append (missing organization) that fn returns: no notification either.
	err = try(s, func(ctx context.Context, tx store.Tx) error { return appendEvent(ctx, tx, "nope") })
	assert.Error(t, err, "AppendEvent to a missing organization")
	notPending(t, ch, "after a failed AppendEvent")

	// The subscription still works afterwards.
	commitEvent(t, s, "o1")
	waitNotified(t, ch, "after a committed AppendEvent")
}
