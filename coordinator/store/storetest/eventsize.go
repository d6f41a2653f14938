package storetest

// The size bound of the event log: PruneEventsOverSize deletes each organization's oldest
// events beyond the bound, organization by organization, and moves PrunedRevision.

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func testPruneEventsOverSize(t *testing.T, s store.Store, reopen ReopenFunc) {
	data := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }
	// o1: five events of 100 bytes (one targeted, one without data between them); o2: three
	// of 100 bytes, interleaved; a big signal for o1 that the bound must not count.
	type ev struct {
		org, target string
		size        int
	}
	in := []ev{{"o1", "", 100}, {"o2", "", 100}, {"o1", "d1", 100}, {"o1", "", 0}, {"o2", "", 100},
		{"o1", "", 100}, {"o1", "", 100}, {"o2", "", 100}, {"o1", "", 100}}
	var r []int64
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		r = r[:0]
		for _, e := range in {
			rec := store.Event{OrganizationID: e.org, TargetDeviceID: e.target, Type: "x", CreatedAt: t0}
			if e.size > 0 {
				rec.Data = data(e.size)
			}
			rev, err := tx.AppendEvent(ctx, rec)
			if err != nil {
				return err
			}
			r = append(r, rev)
		}
		_, err := tx.AppendSignal(ctx, store.Event{OrganizationID: "o1", TargetDeviceID: "d1", Type: "signal", Data: data(5000), CreatedAt: t0})
		return err
	})
	prune := func(maxBytes int64) int64 {
		t.Helper()
		return getOne(t, s, store.Tx.PruneEventsOverSize, maxBytes)
	}
	pruned := func() int64 {
		t.Helper()
		return readTx(t, s, store.Tx.PrunedRevision)
	}

	// o1 holds 500 bytes, o2 300: a bound of 500 holds, and a bound that holds changes nothing.
	assert.EqualValues(t, 0, prune(500), "PruneEventsOverSize within the bound deleted")
	assert.EqualValues(t, 0, pruned(), "PrunedRevision after pruning nothing")

	// 250 bytes: each organization keeps its two newest events (200 bytes), not three (300).
	// o1's event without data sits below the two kept, so it goes too.
	assert.EqualValues(t, 4+1, prune(250), "PruneEventsOverSize(250) deleted")
	equalRevs(t, "o1 after the bound", listEvents(t, s, "o1", "", 0, 0), []int64{r[6], r[8]})
	equalRevs(t, "o2 after the bound", listEvents(t, s, "o2", "", 0, 0), []int64{r[4], r[7]})
	assert.EqualValues(t, r[5], pruned(), "PrunedRevision: the highest revision deleted in any organization")
	// The signal was neither counted nor deleted.
	got := listEvents(t, s, "o1", "d1", 0, 0)
	assert.Len(t, got, 3, "o1 for d1: two events and the signal")
	assert.EqualValues(t, 0, prune(250), "PruneEventsOverSize(250) again deleted")
	assert.EqualValues(t, r[5], pruned(), "PrunedRevision after pruning nothing more")

	// A bound below the newest event alone empties the organization's log.
	assert.EqualValues(t, 2, prune(150), "PruneEventsOverSize(150): o1 and o2 each lose one")
	equalRevs(t, "o1 after 150", listEvents(t, s, "o1", "", 0, 0), []int64{r[8]})
	assert.EqualValues(t, 2, prune(99), "PruneEventsOverSize(99): o1 and o2 each lose their last")
	equalRevs(t, "o1 after 99", listEvents(t, s, "o1", "", 0, 0), nil)
	assert.EqualValues(t, r[8], pruned(), "PrunedRevision")
	equalRevs(t, "o2 after 99", listEvents(t, s, "o2", "", 0, 0), nil)

	// The age prune never lowers what the size prune recorded, and the number survives a
	// restart; new revisions continue above it.
	assert.EqualValues(t, 0, getOne(t, s, store.Tx.PruneEvents, at(-1)), "PruneEvents before everything")
	assert.EqualValues(t, r[8], pruned(), "PrunedRevision after an age prune")
	assert.NoError(t, s.Close())
	s = reopen(t)
	assert.EqualValues(t, r[8], pruned(), "PrunedRevision after reopen")
	next := read(t, s, func(ctx context.Context, tx store.Tx) (int64, error) {
		return tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", Type: "x", CreatedAt: t0})
	})
	assert.Greater(t, next, r[8], "AppendEvent after pruning")
}
