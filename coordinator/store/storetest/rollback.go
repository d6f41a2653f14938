package storetest

// Transactions that fail or are canceled leave nothing behind.

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func testRollback(t *testing.T, s store.Store, _ ReopenFunc) {
	before := readTx(t, s, store.Tx.LatestRevision)

	// fn's own error: everything it did is discarded and the error comes back unchanged.
	err := try(s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateUser(ctx, user("x1", t0)); err != nil {
			return err
		}
		if err := tx.CreateOrganization(ctx, org("ox", "x1", 9)); err != nil {
			return err
		}
		if err := tx.AddMember(ctx, store.Membership{OrganizationID: "o1", UserID: "u3", Role: "member", JoinedAt: t0}); err != nil {
			return err
		}
		if err := tx.CreateDevice(ctx, device("dx", "o1", "u1", 9)); err != nil {
			return err
		}
		if err := tx.SetInvitationStatus(ctx, "none", "x"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("SetInvitationStatus missing: %v", err)
		}
		if _, err := tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", Type: "x", CreatedAt: t0}); err != nil {
			return err
		}
		if err := tx.DeleteOrganization(ctx, "o2"); err != nil {
			return err
		}
		return fmt.Errorf("after the writes: %w", errBoom)
	})
	require.ErrorIs(t, err, errBoom, "Tx returns the function's error")
	checkUntouched(t, s, before)

	// A failing store call whose error fn returns rolls back the earlier writes of the same Tx.
	err = try(s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateUser(ctx, user("x1", t0)); err != nil {
			return err
		}
		return tx.CreateUser(ctx, store.User{ID: "x2", Username: "name-u1", CreatedAt: t0})
	})
	require.ErrorIs(t, err, store.ErrConflict, "Tx returns the failed call's error")
	checkUntouched(t, s, before)

	// A failed call does not poison the transaction: fn may handle the error, go on and commit.
	// (The domain layer relies on this, e.g. "create, and on conflict read the existing row".)
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateUser(ctx, store.User{ID: "x3", Username: "name-u1", CreatedAt: t0}); !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("duplicate CreateUser: %v, want ErrConflict", err)
		}
		if err := tx.CreateDevice(ctx, device("dy", "nope", "u1", 9)); err == nil {
			return errors.New("CreateDevice in a missing organization succeeded")
		}
		if _, err := tx.GetUserByUsername(ctx, "name-u1"); err != nil {
			return err
		}
		return tx.CreateUser(ctx, user("x4", t0))
	})
	got := readTx(t, s, store.Tx.ListUsers)
	equalIDs(t, "users after a Tx that recovered from a failed call",
		ids(got, func(u store.User) string { return u.ID }), []string{"u1", "x4", "u2", "u3"})
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetDevice, "dy", "the failed CreateDevice left nothing")
}

// checkUntouched verifies that the world fixture is exactly as world left it.
func checkUntouched(t *testing.T, s store.Store, rev int64) {
	t.Helper()
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetUser, "x1", "user of a rolled-back Tx")
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetOrganization, "ox", "organization of a rolled-back Tx")
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetDevice, "dx", "device of a rolled-back Tx")
	wantErrTx(t, s, store.ErrNotFound, "membership of a rolled-back Tx", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetMember(ctx, "o1", "u3")
		return err
	})
	getOne(t, s, store.Tx.GetOrganization, "o2") // deleted by a rolled-back Tx
	assert.Len(t, getOne(t, s, store.Tx.ListMembers, "o2"), 1, "members of o2 after a rolled-back delete")
	assert.Equal(t, rev, readTx(t, s, store.Tx.LatestRevision), "LatestRevision after a rolled-back append")
	assert.Empty(t, listEvents(t, s, "o1", "", 0, 0), "events of a rolled-back Tx")
}

func testContextCanceled(t *testing.T, s store.Store, _ ReopenFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := s.Tx(ctx, func(tx store.Tx) error {
		called = true
		return tx.CreateUser(ctx, user("x1", t0))
	})
	assert.ErrorIs(t, err, context.Canceled, "Tx with a canceled context")
	_ = called // an engine may or may not call fn; what matters is that nothing commits

	// Canceled while fn runs: the transaction must not commit.
	ctx, cancel = context.WithCancel(context.Background())
	err = s.Tx(ctx, func(tx store.Tx) error {
		if err := tx.CreateUser(ctx, user("x2", t0)); err != nil {
			return err
		}
		cancel()
		return nil
	})
	assert.Error(t, err, "Tx whose context was canceled before commit")
	for _, id := range []string{"x1", "x2"} {
		wantGetErr(t, s, store.ErrNotFound, store.Tx.GetUser, id, "user of a canceled Tx")
	}
}
