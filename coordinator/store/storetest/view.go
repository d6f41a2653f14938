package storetest

// View: read-only transactions that see a snapshot and never wait for a writer.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func testView(t *testing.T, s store.Store, _ ReopenFunc) {
	ctx := context.Background()
	commitEvent(t, s, "o1")
	var got store.User
	var evs []store.Event
	require.NoError(t, s.View(ctx, func(tx store.Tx) error {
		var err error
		if got, err = tx.GetUser(ctx, "u1"); err != nil {
			return err
		}
		evs, err = tx.ListEvents(ctx, "o1", "", 0, 0)
		return err
	}), "View")
	equal(t, "GetUser in View", got, user("u1", t0))
	assert.Len(t, evs, 1, "events in View")
	err := s.View(ctx, func(tx store.Tx) error { _, err := tx.GetUser(ctx, "nope"); return err })
	wantErr(t, err, store.ErrNotFound, "GetUser missing in View")
	err = s.View(ctx, func(tx store.Tx) error { return errBoom })
	assert.ErrorIs(t, err, errBoom, "View returns fn's error")

	// Every kind of write fails, and nothing of it is stored.
	for name, write := range map[string]func(tx store.Tx) error{
		"CreateUser": func(tx store.Tx) error { return tx.CreateUser(ctx, user("x1", t0)) },
		"AppendEvent": func(tx store.Tx) error {
			_, err := tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", Type: "x", CreatedAt: t0})
			return err
		},
		"AppendSignal": func(tx store.Tx) error {
			_, err := appendSignal(ctx, tx, "o1", "d1", t0)
			return err
		},
		"DeleteOrganization": func(tx store.Tx) error { return tx.DeleteOrganization(ctx, "o2") },
		"SetOrgRelays":       func(tx store.Tx) error { return tx.SetOrgRelays(ctx, orgRelays("o1", 1)) },
		"TakeLoginState": func(tx store.Tx) error {
			_, err := tx.TakeLoginState(ctx, []byte("x"))
			return err
		},
		"PruneEvents": func(tx store.Tx) error { _, err := tx.PruneEvents(ctx, at(time.Hour)); return err },
	} {
		wantErr(t, s.View(ctx, write), store.ErrReadOnly, "View: "+name)
	}
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetUser, "x1", "user created in a View")
	getOne(t, s, store.Tx.GetOrganization, "o2")
	assert.Len(t, listEvents(t, s, "o1", "d1", 0, 0), 1, "events after Views that appended")
}

// testViewNotBlockedByWriter holds a write transaction open and requires a View to finish in
// the meantime, seeing the last commit and not the open transaction's writes.
func testViewNotBlockedByWriter(t *testing.T, s store.Store, _ ReopenFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	started, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock() // also when the test fails early
	done := make(chan error, 1)
	go func() {
		done <- s.Tx(ctx, func(tx store.Tx) error {
			if err := tx.CreateUser(ctx, user("x1", t0)); err != nil {
				return err
			}
			if _, err := tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", Type: "x", CreatedAt: t0}); err != nil {
				return err
			}
			select { // a retried attempt (PostgreSQL) must not close twice
			case <-started:
			default:
				close(started)
			}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("writer ended before holding its transaction: %v", err)
	}
	err := s.View(ctx, func(tx store.Tx) error {
		if _, err := tx.GetUser(ctx, "x1"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("View saw the open transaction's user: GetUser: %v", err)
		}
		evs, err := tx.ListEvents(ctx, "o1", "", 0, 0)
		if err != nil {
			return err
		}
		if len(evs) != 0 {
			return fmt.Errorf("View saw the open transaction's events: %d", len(evs))
		}
		_, err = tx.GetUser(ctx, "u1")
		return err
	})
	require.NoError(t, err, "View while a writer holds a transaction (it must not wait for it)")
	unblock()
	require.NoError(t, <-done, "writer")
	require.NoError(t, s.View(ctx, func(tx store.Tx) error { _, err := tx.GetUser(ctx, "x1"); return err }),
		"View after the writer committed")
}
