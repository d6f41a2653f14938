package storetest

// Data surviving a reopen, and the Close rule.

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// snapshot reads everything the world-plus fixture of testReopen stored.
func snapshot(t *testing.T, s store.Store) map[string]any {
	t.Helper()
	snap := map[string]any{}
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		put := func(key string, v any, e error) {
			if e != nil && err == nil {
				err = fmt.Errorf("%s: %w", key, e)
			}
			snap[key] = normalize(v)
		}
		v1, e := tx.ListUsers(ctx)
		put("users", v1, e)
		v2, e := tx.GetToken(ctx, "t1")
		put("token t1", v2, e)
		v3, e := tx.ListOrganizations(ctx)
		put("organizations", v3, e)
		for _, o := range []string{"o1", "o2"} {
			m, e := tx.ListMembers(ctx, o)
			put("members "+o, m, e)
			i, e := tx.ListInvitationsForOrganization(ctx, o)
			put("invitations "+o, i, e)
			k, e := tx.ListRegKeys(ctx, o)
			put("regkeys "+o, k, e)
			d, e := tx.ListDevices(ctx, o)
			put("devices "+o, d, e)
			ev, e := tx.ListEvents(ctx, o, "d1", 0, 0)
			put("events "+o, ev, e)
		}
		l, e := tx.LatestRevision(ctx)
		put("latest", l, e)
		p, e := tx.PrunedRevision(ctx)
		put("pruned", p, e)
		return err
	})
	return snap
}

func testReopen(t *testing.T, s store.Store, reopen ReopenFunc) {
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		steps := []error{
			tx.CreateToken(ctx, store.Token{ID: "t1", UserID: "u1", Description: "cli", SecretHash: []byte{1, 2, 3},
				ExpiresAt: ptr(at(time.Hour)), CreatedAt: at(time.Millisecond)}),
			tx.CreateInvitation(ctx, store.Invitation{ID: "i1", OrganizationID: "o1", UserID: "u3", Role: "member",
				InviterID: "u1", Status: "pending", ExpiresAt: at(time.Hour), CreatedAt: at(time.Microsecond)}),
			tx.CreateRegKey(ctx, store.RegKey{ID: "k1", OrganizationID: "o1", OwnerID: "u1", SecretHash: []byte("s"),
				SingleUse: true, ExpiresAt: ptr(at(time.Hour)), CreatedAt: t0}),
			tx.CreateRegKey(ctx, store.RegKey{ID: "k2", OrganizationID: "o2", OwnerID: "u2", SecretHash: []byte("s2"),
				Ephemeral: true, Used: true, CreatedAt: t0}),
			tx.CreateDevice(ctx, device("d1", "o1", "u1", 1)),
			tx.SetOrgRelays(ctx, orgRelays("o1", 5)),
			tx.CreateDevice(ctx, func() store.Device {
				d := device("d2", "o2", "u1", 1)
				d.ChildPrefixes, d.SymmetricNAT = []string{"10.0.0.0/8"}, true
				return d
			}()),
		}
		for _, err := range steps {
			if err != nil {
				return err
			}
		}
		for i := 0; i < 4; i++ {
			if _, err := tx.AppendEvent(ctx, store.Event{OrganizationID: []string{"o1", "o2"}[i%2],
				TargetDeviceID: []string{"", "d1"}[i/2], Type: "x", Data: []byte{byte(i)},
				CreatedAt: at(time.Duration(i) * time.Minute)}); err != nil {
				return err
			}
		}
		_, err := tx.PruneEvents(ctx, at(time.Minute))
		return err
	})
	before := snapshot(t, s)
	require.NoError(t, s.Close(), "Close")
	s = reopen(t)
	after := snapshot(t, s)
	for k, v := range before {
		equal(t, "after reopen: "+k, after[k], v)
	}
	equal(t, "relays after reopen", getOne(t, s, store.Tx.GetOrgRelays, "o1"), orgRelays("o1", 5))

	// Rules and sequences carry on where they were.
	wantErrTx(t, s, store.ErrConflict, "duplicate username after reopen", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateUser(ctx, store.User{ID: "z", Username: "name-u1", CreatedAt: t0})
	})
	wantErrTx(t, s, store.ErrConflict, "duplicate address after reopen", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateDevice(ctx, device("d9", "o1", "u1", 1))
	})
	rev := read(t, s, func(ctx context.Context, tx store.Tx) (int64, error) {
		return tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", Type: "x", CreatedAt: t0})
	})
	assert.Greater(t, rev, before["latest"].(int64), "AppendEvent after reopen")
	ch, cancel := subscribe(s)
	defer cancel()
	commitEvent(t, s, "o2")
	waitNotified(t, ch, "subscriber on a reopened store")
}

// testClose checks what a closed store does: Tx fails, Close answers net.ErrClosed, and
// subscriptions are harmless.
func testClose(t *testing.T, s store.Store, _ ReopenFunc) {
	ch, cancel := subscribe(s)
	require.NoError(t, s.Close(), "Close")
	cancel() // after Close: harmless
	cancel()
	notPending(t, ch, "subscription of a closed store")
	err := s.Tx(context.Background(), func(tx store.Tx) error {
		_, err := tx.GetUser(context.Background(), "u1")
		return err
	})
	assert.Error(t, err, "Tx after Close")
	// The project's one Close rule: every call after the first answers net.ErrClosed, wrapped.
	for range 2 {
		wantErr(t, s.Close(), net.ErrClosed, "Close after Close")
	}
	// Subscribing to a closed store must not panic or leak; the channel simply never fires.
	_, cancel = subscribe(s)
	cancel()
	s.Watch(func(store.Change) {})()
	ctx := context.Background()
	assert.Error(t, s.View(ctx, func(tx store.Tx) error { _, err := tx.GetUser(ctx, "u1"); return err }), "View after Close")
	_, ok, err := s.TryLock(ctx, "sweep")
	assert.Error(t, err, "TryLock after Close")
	assert.False(t, ok, "TryLock after Close")
}
