package storetest

// Sign-in: identities at OpenID providers, browser sessions, login states, device
// authorizations (RFC 8628), and pruning the expired ones.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

const issuer = "https://accounts.example.com"

func testIdentities(t *testing.T, s store.Store, _ ReopenFunc) {
	idents := []store.Identity{
		{Issuer: issuer, Subject: "b", UserID: "u1", Email: "u1@example.com", CreatedAt: at(2 * time.Second)},
		{Issuer: "https://other.example", Subject: "b", UserID: "u1", CreatedAt: at(time.Second)},
		{Issuer: issuer, Subject: "a", UserID: "u2", Email: "u2@example.com", CreatedAt: at(time.Second)},
	}
	createAll(t, s, store.Tx.CreateIdentity, idents...)
	for _, i := range idents {
		got := read(t, s, func(ctx context.Context, tx store.Tx) (store.Identity, error) {
			return tx.GetIdentity(ctx, i.Issuer, i.Subject)
		})
		equal(t, "GetIdentity "+i.Issuer+" "+i.Subject, got, i)
	}
	key := func(i store.Identity) string { return i.Issuer + " " + i.Subject }
	list := getOne(t, s, store.Tx.ListIdentitiesForUser, "u1")
	equalIDs(t, "ListIdentitiesForUser u1", ids(list, key), []string{"https://other.example b", issuer + " b"})
	equalIDs(t, "ListIdentitiesForUser u3", ids(getOne(t, s, store.Tx.ListIdentitiesForUser, "u3"), key), nil)

	wantErrTx(t, s, store.ErrConflict, "CreateIdentity with a taken issuer and subject", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateIdentity(ctx, store.Identity{Issuer: issuer, Subject: "a", UserID: "u3", CreatedAt: t0})
	})
	wantErrTx(t, s, store.ErrNotFound, "CreateIdentity for a missing user", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateIdentity(ctx, store.Identity{Issuer: issuer, Subject: "z", UserID: "nope", CreatedAt: t0})
	})
	for name, key := range map[string][2]string{
		"GetIdentity missing subject":           {issuer, "z"},
		"GetIdentity subject of another issuer": {"https://third.example", "a"},
	} {
		wantErrTx(t, s, store.ErrNotFound, name, func(ctx context.Context, tx store.Tx) error {
			_, err := tx.GetIdentity(ctx, key[0], key[1])
			return err
		})
	}
}

func testSessions(t *testing.T, s store.Store, _ ReopenFunc) {
	sess := store.Session{ID: "s1", UserID: "u1", SecretHash: []byte{0, 1, 0xff}, ExpiresAt: at(time.Hour + time.Microsecond), CreatedAt: t0}
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.CreateSession(ctx, sess) })
	equal(t, "GetSession", getOne(t, s, store.Tx.GetSession, "s1"), sess)
	wantErrTx(t, s, store.ErrConflict, "CreateSession with a taken ID", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateSession(ctx, store.Session{ID: "s1", UserID: "u2", ExpiresAt: t0, CreatedAt: t0})
	})
	wantErrTx(t, s, store.ErrNotFound, "CreateSession for a missing user", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateSession(ctx, store.Session{ID: "s2", UserID: "nope", ExpiresAt: t0, CreatedAt: t0})
	})
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteSession(ctx, "s1") })
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetSession, "s1", "GetSession deleted")
	wantErrTx(t, s, store.ErrNotFound, "DeleteSession missing", func(ctx context.Context, tx store.Tx) error {
		return tx.DeleteSession(ctx, "s1")
	})
}

func testLoginStates(t *testing.T, s store.Store, _ ReopenFunc) {
	plain := store.LoginState{StateHash: []byte{0, 0xfe, 7}, Provider: "google", Nonce: "n1", Verifier: "v1",
		ReturnTo: "/devices?x=1", ExpiresAt: at(10 * time.Minute), CreatedAt: t0}
	link := store.LoginState{StateHash: []byte("linking"), Provider: "github", Nonce: "n2", Verifier: "v2",
		LinkUserID: "u2", ExpiresAt: at(10*time.Minute + time.Microsecond), CreatedAt: at(time.Second)}
	createAll(t, s, store.Tx.CreateLoginState, plain, link)
	wantErrTx(t, s, store.ErrConflict, "CreateLoginState with a taken state", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateLoginState(ctx, store.LoginState{StateHash: []byte("linking"), Provider: "x", ExpiresAt: t0, CreatedAt: t0})
	})
	wantErrTx(t, s, store.ErrNotFound, "CreateLoginState linking a missing user", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateLoginState(ctx, store.LoginState{StateHash: []byte("z"), Provider: "x", LinkUserID: "nope", ExpiresAt: t0, CreatedAt: t0})
	})
	for _, l := range []store.LoginState{plain, link} {
		equal(t, "TakeLoginState "+l.Provider, getOne(t, s, store.Tx.TakeLoginState, l.StateHash), l)
		// Taken once: a replayed callback finds nothing.
		wantGetErr(t, s, store.ErrNotFound, store.Tx.TakeLoginState, l.StateHash, "TakeLoginState again "+l.Provider)
	}
	// A take that rolls back leaves the state for the next try.
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.CreateLoginState(ctx, plain) })
	_ = try(s, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.TakeLoginState(ctx, plain.StateHash); err != nil {
			return err
		}
		return errBoom
	})
	equal(t, "TakeLoginState after a rolled-back take", getOne(t, s, store.Tx.TakeLoginState, plain.StateHash), plain)
}

func testDeviceAuths(t *testing.T, s store.Store, _ ReopenFunc) {
	pending := store.DeviceAuth{ID: "da1", DeviceCodeHash: []byte{1, 2, 3, 0}, UserCode: "WDJB-MJHT", ClientName: "nexctl on laptop",
		Status: "pending", ExpiresAt: at(15 * time.Minute), CreatedAt: t0}
	other := store.DeviceAuth{ID: "da2", DeviceCodeHash: []byte("other"), UserCode: "BCDF-GHJK", Status: "pending",
		ExpiresAt: at(15 * time.Minute), LastPolledAt: at(time.Second), CreatedAt: t0}
	createAll(t, s, store.Tx.CreateDeviceAuth, pending, other)
	equal(t, "GetDeviceAuthByCodeHash", getOne(t, s, store.Tx.GetDeviceAuthByCodeHash, pending.DeviceCodeHash), pending)
	equal(t, "GetDeviceAuthByUserCode", getOne(t, s, store.Tx.GetDeviceAuthByUserCode, "BCDF-GHJK"), other)

	for name, d := range map[string]store.DeviceAuth{
		"CreateDeviceAuth with a taken ID":          {ID: "da1", DeviceCodeHash: []byte("x"), UserCode: "X", Status: "pending", ExpiresAt: t0, CreatedAt: t0},
		"CreateDeviceAuth with a taken device code": {ID: "da3", DeviceCodeHash: []byte("other"), UserCode: "Y", Status: "pending", ExpiresAt: t0, CreatedAt: t0},
		"CreateDeviceAuth with a taken user code":   {ID: "da4", DeviceCodeHash: []byte("z"), UserCode: "WDJB-MJHT", Status: "pending", ExpiresAt: t0, CreatedAt: t0},
	} {
		wantErrTx(t, s, store.ErrConflict, name, func(ctx context.Context, tx store.Tx) error { return tx.CreateDeviceAuth(ctx, d) })
	}

	// Approve: every field but the keys and the creation time may change.
	approved := pending
	approved.Status, approved.UserID, approved.ClientName = "approved", "u1", "renamed"
	approved.LastPolledAt, approved.ExpiresAt = at(5*time.Second+time.Microsecond), at(20*time.Minute)
	upd := approved
	upd.DeviceCodeHash, upd.UserCode, upd.CreatedAt = []byte("ignored"), "IGNORED", at(time.Hour)
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UpdateDeviceAuth(ctx, upd) })
	equal(t, "GetDeviceAuthByUserCode after approval", getOne(t, s, store.Tx.GetDeviceAuthByUserCode, "WDJB-MJHT"), approved)
	equal(t, "other device authorization untouched", getOne(t, s, store.Tx.GetDeviceAuthByCodeHash, []byte("other")), other)
	// Clearing the user again sticks (a denial after a mistaken approval, say).
	denied := approved
	denied.Status, denied.UserID = "denied", ""
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UpdateDeviceAuth(ctx, denied) })
	equal(t, "GetDeviceAuthByCodeHash after denial", getOne(t, s, store.Tx.GetDeviceAuthByCodeHash, pending.DeviceCodeHash), denied)

	wantErrTx(t, s, store.ErrNotFound, "UpdateDeviceAuth missing", func(ctx context.Context, tx store.Tx) error {
		d := pending
		d.ID = "nope"
		return tx.UpdateDeviceAuth(ctx, d)
	})
	wantErrTx(t, s, store.ErrNotFound, "UpdateDeviceAuth approving a missing user", func(ctx context.Context, tx store.Tx) error {
		d := approved
		d.UserID = "nope"
		return tx.UpdateDeviceAuth(ctx, d)
	})
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetDeviceAuthByCodeHash, []byte("nope"), "GetDeviceAuthByCodeHash missing")
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetDeviceAuthByUserCode, "wdjb-mjht", "GetDeviceAuthByUserCode other case")
}

func testPruneAuth(t *testing.T, s store.Store, _ ReopenFunc) {
	cutoff := at(time.Hour)
	old, fresh := at(time.Hour-time.Microsecond), cutoff // strictly before the cutoff goes
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, err := range []error{
			tx.CreateSession(ctx, store.Session{ID: "old", UserID: "u1", ExpiresAt: old, CreatedAt: t0}),
			tx.CreateSession(ctx, store.Session{ID: "fresh", UserID: "u1", ExpiresAt: fresh, CreatedAt: t0}),
			tx.CreateLoginState(ctx, store.LoginState{StateHash: []byte("old"), Provider: "p", ExpiresAt: old, CreatedAt: t0}),
			tx.CreateLoginState(ctx, store.LoginState{StateHash: []byte("fresh"), Provider: "p", ExpiresAt: fresh, CreatedAt: t0}),
			tx.CreateDeviceAuth(ctx, store.DeviceAuth{ID: "old", DeviceCodeHash: []byte("old"), UserCode: "OLD", Status: "pending", ExpiresAt: old, CreatedAt: t0}),
			tx.CreateDeviceAuth(ctx, store.DeviceAuth{ID: "fresh", DeviceCodeHash: []byte("fresh"), UserCode: "FRESH", Status: "pending", ExpiresAt: fresh, CreatedAt: t0}),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	})
	// The cutoff is given in another zone than the rows were written in.
	assert.EqualValues(t, 3, getOne(t, s, store.Tx.PruneAuth, cutoff.UTC()), "PruneAuth deleted")
	assert.EqualValues(t, 0, getOne(t, s, store.Tx.PruneAuth, cutoff), "PruneAuth again deleted")
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetSession, "old", "expired session after PruneAuth")
	wantGetErr(t, s, store.ErrNotFound, store.Tx.TakeLoginState, []byte("old"), "expired login state after PruneAuth")
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetDeviceAuthByUserCode, "OLD", "expired device authorization after PruneAuth")
	getOne(t, s, store.Tx.GetSession, "fresh")
	getOne(t, s, store.Tx.TakeLoginState, []byte("fresh"))
	getOne(t, s, store.Tx.GetDeviceAuthByUserCode, "FRESH")
}
