package storetest

// What re-sealing secrets at start needs: every organization's relays listed at once, and
// Compact, which keeps every row readable and the store usable.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func testListOrgRelays(t *testing.T, s store.Store, _ ReopenFunc) {
	list := func() []store.OrgRelays {
		t.Helper()
		return readTx(t, s, store.Tx.ListOrgRelays)
	}
	assert.Empty(t, list(), "ListOrgRelays before any")

	// Set out of order: listed by organization ID, every field read back.
	r2, r1 := orgRelays("o2", 2), orgRelays("o1", 1)
	r1.Secret = []byte{0, 's', 'e', 'c', 0xff} // binary, with a zero byte first as the coordinator stores it
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.SetOrgRelays(ctx, r2); err != nil {
			return err
		}
		return tx.SetOrgRelays(ctx, r1)
	})
	equal(t, "ListOrgRelays", list(), []store.OrgRelays{r1, r2})

	// Replacing a row in place keeps one row per organization.
	r1.Secret, r1.UpdatedAt = []byte("replaced"), at(time.Hour)
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.SetOrgRelays(ctx, r1) })
	equal(t, "ListOrgRelays after replace", list(), []store.OrgRelays{r1, r2})

	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteOrgRelays(ctx, "o1") })
	equal(t, "ListOrgRelays after delete", list(), []store.OrgRelays{r2})
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteOrganization(ctx, "o2") })
	assert.Empty(t, list(), "ListOrgRelays after the organization's deletion")
}

func testCompact(t *testing.T, s store.Store, _ ReopenFunc) {
	ctx := context.Background()
	r1 := orgRelays("o1", 1)
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.SetOrgRelays(ctx, r1); err != nil {
			return err
		}
		for range 50 {
			if err := appendEvent(ctx, tx, "o1"); err != nil {
				return err
			}
		}
		return nil
	})
	// Something deleted and something overwritten, as re-sealing leaves behind.
	assert.EqualValues(t, 50, getOne(t, s, store.Tx.PruneEvents, at(time.Hour)), "PruneEvents")
	r1.Secret = []byte("sealed form")
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.SetOrgRelays(ctx, r1) })

	require.NoError(t, s.Compact(ctx), "Compact")
	require.NoError(t, s.Compact(ctx), "Compact again")
	equal(t, "relays after Compact", getOne(t, s, store.Tx.GetOrgRelays, "o1"), r1)
	assert.Equal(t, "u1", getOne(t, s, store.Tx.GetUser, "u1").ID, "user after Compact")
	latest := readTx(t, s, store.Tx.LatestRevision)
	commitEvent(t, s, "o1")
	assert.Equal(t, latest+1, readTx(t, s, store.Tx.LatestRevision), "an append after Compact")

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	assert.Error(t, s.Compact(canceled), "Compact with a canceled context")
	require.NoError(t, s.Close())
	assert.Error(t, s.Compact(ctx), "Compact after Close")
}
