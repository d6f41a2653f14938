package storetest

// Signals: transient events for one device, numbered with the log, listed among its events,
// pruned apart from it.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func appendSignal(ctx context.Context, tx store.Tx, org, target string, created time.Time) (int64, error) {
	return tx.AppendSignal(ctx, store.Event{OrganizationID: org, TargetDeviceID: target, Type: "signal",
		Data: []byte(`{"sdp":"x"}`), CreatedAt: created})
}

func testSignals(t *testing.T, s store.Store, _ ReopenFunc) {
	var r []int64
	var sig store.Event
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		steps := []func() (int64, error){
			func() (int64, error) {
				return tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", Type: "a", CreatedAt: t0})
			},
			func() (int64, error) { return appendSignal(ctx, tx, "o1", "d1", at(time.Second)) },
			func() (int64, error) { return appendSignal(ctx, tx, "o1", "d2", t0) },
			func() (int64, error) {
				return tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", TargetDeviceID: "d1", Type: "b", CreatedAt: t0})
			},
			func() (int64, error) { return appendSignal(ctx, tx, "o2", "d1", t0) },
			func() (int64, error) {
				return tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", Type: "c", CreatedAt: t0})
			},
		}
		for _, step := range steps {
			rev, err := step()
			if err != nil {
				return err
			}
			r = append(r, rev)
		}
		return nil
	})
	require.IsIncreasing(t, r, "revisions of events and signals: one sequence")
	sig = store.Event{Revision: r[1], OrganizationID: "o1", TargetDeviceID: "d1", Type: "signal", Data: []byte(`{"sdp":"x"}`), CreatedAt: at(time.Second)}
	assert.Equal(t, r[5], readTx(t, s, store.Tx.LatestRevision), "LatestRevision")

	got := listEvents(t, s, "o1", "d1", 0, 0)
	equalRevs(t, "ListEvents o1 for d1", got, []int64{r[0], r[1], r[3], r[5]})
	if len(got) == 4 {
		equal(t, "signal record", got[1], sig)
	}
	equalRevs(t, "ListEvents o1 for d2", listEvents(t, s, "o1", "d2", 0, 0), []int64{r[0], r[2], r[5]})
	equalRevs(t, "ListEvents o1 untargeted (no signals)", listEvents(t, s, "o1", "", 0, 0), []int64{r[0], r[5]})
	equalRevs(t, "ListEvents o2 for d1", listEvents(t, s, "o2", "d1", 0, 0), []int64{r[4]})
	equalRevs(t, "ListEvents o1 for d1 after, with a limit", listEvents(t, s, "o1", "d1", r[0], 2), []int64{r[1], r[3]})
	equalRevs(t, "ListEvents o1 for d1 after the signal", listEvents(t, s, "o1", "d1", r[1], 0), []int64{r[3], r[5]})

	wantErrTx(t, s, store.ErrNotFound, "AppendSignal to a missing organization", func(ctx context.Context, tx store.Tx) error {
		_, err := appendSignal(ctx, tx, "nope", "d1", t0)
		return err
	})
	err := try(s, func(ctx context.Context, tx store.Tx) error {
		_, err := appendSignal(ctx, tx, "o1", "", t0)
		return err
	})
	assert.Error(t, err, "AppendSignal without a target")

	// Signals go with their organization.
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteOrganization(ctx, "o2") })
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.CreateOrganization(ctx, org("o2", "u2", 2)) })
	assert.Empty(t, listEvents(t, s, "o2", "d1", 0, 0), "signals of a deleted organization")
}

func testPruneSignals(t *testing.T, s store.Store, _ ReopenFunc) {
	var r []int64
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for i := range 4 {
			rev, err := appendSignal(ctx, tx, "o1", "d1", at(time.Duration(i)*time.Minute))
			if err != nil {
				return err
			}
			r = append(r, rev)
		}
		// An old event: PruneSignals leaves the log alone.
		rev, err := tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", Type: "x", CreatedAt: at(-time.Hour)})
		r = append(r, rev)
		return err
	})
	// Strictly before: the signal at exactly 2 minutes stays.
	assert.EqualValues(t, 2, getOne(t, s, store.Tx.PruneSignals, at(2*time.Minute).UTC()), "PruneSignals deleted")
	equalRevs(t, "ListEvents after PruneSignals", listEvents(t, s, "o1", "d1", 0, 0), []int64{r[2], r[3], r[4]})
	assert.EqualValues(t, 0, readTx(t, s, store.Tx.PrunedRevision), "PrunedRevision after PruneSignals")
	assert.Equal(t, r[4], readTx(t, s, store.Tx.LatestRevision), "LatestRevision after PruneSignals")

	// PruneEvents prunes events only, and does not count signals.
	assert.EqualValues(t, 1, getOne(t, s, store.Tx.PruneEvents, at(time.Hour)), "PruneEvents deleted")
	equalRevs(t, "ListEvents after PruneEvents", listEvents(t, s, "o1", "d1", 0, 0), []int64{r[2], r[3]})
	assert.Equal(t, r[4], readTx(t, s, store.Tx.PrunedRevision), "PrunedRevision after PruneEvents")
	assert.EqualValues(t, 2, getOne(t, s, store.Tx.PruneSignals, at(time.Hour)), "PruneSignals of the rest")
	assert.EqualValues(t, 0, getOne(t, s, store.Tx.PruneSignals, at(time.Hour)), "PruneSignals again")
}
