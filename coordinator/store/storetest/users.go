package storetest

// Users and their API tokens.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func testUsers(t *testing.T, s store.Store, _ ReopenFunc) {
	// Inserted out of order: the list must be by creation time, then ID.
	users := []store.User{user("c", at(2*time.Second)), user("b", at(time.Second)), user("a", at(2*time.Second))}
	require.Empty(t, readTx(t, s, store.Tx.ListUsers), "ListUsers on an empty store")
	createAll(t, s, store.Tx.CreateUser, users...)
	for _, u := range users {
		got := getOne(t, s, store.Tx.GetUser, u.ID)
		equal(t, "GetUser", got, u)
		got = getOne(t, s, store.Tx.GetUserByUsername, u.Username)
		equal(t, "GetUserByUsername", got, u)
	}
	list := readTx(t, s, store.Tx.ListUsers)
	equalIDs(t, "ListUsers", ids(list, func(u store.User) string { return u.ID }), []string{"b", "a", "c"})
	equal(t, "ListUsers[0]", list[0], users[1])

	wantErrTx(t, s, store.ErrConflict, "CreateUser with taken username", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateUser(ctx, store.User{ID: "d", Username: "name-a", CreatedAt: t0})
	})
	wantErrTx(t, s, store.ErrConflict, "CreateUser with taken ID", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateUser(ctx, store.User{ID: "a", Username: "other", CreatedAt: t0})
	})
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetUser, "nope", "GetUser missing")
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetUserByUsername, "nope", "GetUserByUsername missing")
	// Usernames are matched ignoring ASCII case.
	equal(t, "GetUserByUsername other case", getOne(t, s, store.Tx.GetUserByUsername, "NAME-A"), users[2])
}

func testUsernamesIgnoreCase(t *testing.T, s store.Store, _ ReopenFunc) {
	carl := store.User{ID: "u1", Username: "carl", CreatedAt: t0}
	personal := func(id, name string) store.Organization {
		o := org(id, "u1", 1)
		o.Name, o.Personal = name, true
		return o
	}
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateUser(ctx, carl); err != nil {
			return err
		}
		return tx.CreateOrganization(ctx, personal("o1", "carl"))
	})
	for _, name := range []string{"Carl", "CARL", "cArL"} {
		equal(t, "GetUserByUsername "+name, getOne(t, s, store.Tx.GetUserByUsername, name), carl)
		wantErrTx(t, s, store.ErrConflict, "CreateUser "+name+" beside carl", func(ctx context.Context, tx store.Tx) error {
			return tx.CreateUser(ctx, store.User{ID: "u-" + name, Username: name, CreatedAt: t0})
		})
		wantErrTx(t, s, store.ErrConflict, "personal organization "+name+" beside carl", func(ctx context.Context, tx store.Tx) error {
			return tx.CreateOrganization(ctx, personal("o-"+name, name))
		})
	}
	// Other organizations' names are not unique at all, whatever their case.
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		o := org("o2", "u1", 2)
		o.Name = "CARL"
		return tx.CreateOrganization(ctx, o)
	})
	// Only ASCII letters fold: "É" and "é" are different letters here, as in any comparison
	// that does not depend on a locale.
	accented := []store.User{{ID: "u2", Username: "émile", CreatedAt: t0}, {ID: "u3", Username: "Émile", CreatedAt: t0}}
	createAll(t, s, store.Tx.CreateUser, accented...)
	equal(t, "GetUserByUsername Émile", getOne(t, s, store.Tx.GetUserByUsername, "Émile"), accented[1])
	equal(t, "GetUserByUsername ÉMILE", getOne(t, s, store.Tx.GetUserByUsername, "ÉMILE"), accented[1])
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetUserByUsername, "carl2", "GetUserByUsername of a longer name")
}

func testTokens(t *testing.T, s store.Store, _ ReopenFunc) {
	tokens := []store.Token{
		{ID: "t1", UserID: "u1", Description: "laptop", SecretHash: []byte{0, 1, 2, 0xfe, 0xff}, CreatedAt: at(time.Second)},
		{ID: "t2", UserID: "u1", Description: "", SecretHash: []byte("hash"), ExpiresAt: ptr(at(time.Hour + 789*time.Microsecond)), CreatedAt: at(2 * time.Second)},
	}
	createAll(t, s, store.Tx.CreateToken, tokens...)
	for _, k := range tokens {
		got := getOne(t, s, store.Tx.GetToken, k.ID)
		equal(t, "GetToken "+k.ID, got, k)
		assert.Equal(t, k.ExpiresAt == nil, got.ExpiresAt == nil, "GetToken %s: no ExpiresAt", k.ID)
	}
	wantErrTx(t, s, store.ErrConflict, "CreateToken with taken ID", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateToken(ctx, store.Token{ID: "t1", UserID: "u2", CreatedAt: t0})
	})
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetToken, "nope", "GetToken missing")

	// Inserted out of order: listed by creation time, then ID; other users' tokens apart.
	createAll(t, s, store.Tx.CreateToken,
		store.Token{ID: "t0", UserID: "u1", SecretHash: []byte("h0"), CreatedAt: at(2 * time.Second)},
		store.Token{ID: "t9", UserID: "u2", SecretHash: []byte("h9"), CreatedAt: t0})
	tid := func(k store.Token) string { return k.ID }
	list := getOne(t, s, store.Tx.ListTokensForUser, "u1")
	equalIDs(t, "ListTokensForUser u1", ids(list, tid), []string{"t1", "t0", "t2"})
	if len(list) == 3 {
		equal(t, "ListTokensForUser record", list[2], tokens[1])
	}
	equalIDs(t, "ListTokensForUser u3", ids(getOne(t, s, store.Tx.ListTokensForUser, "u3"), tid), nil)
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteToken(ctx, "t1") })
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetToken, "t1", "GetToken deleted")
	equalIDs(t, "ListTokensForUser after delete", ids(getOne(t, s, store.Tx.ListTokensForUser, "u1"), tid), []string{"t0", "t2"})
	wantErrTx(t, s, store.ErrNotFound, "DeleteToken missing", func(ctx context.Context, tx store.Tx) error {
		return tx.DeleteToken(ctx, "t1")
	})
}

func testDeleteUser(t *testing.T, s store.Store, _ ReopenFunc) {
	// u3 has one of everything that belongs to a user, and owns nothing.
	auth := store.DeviceAuth{ID: "da3", DeviceCodeHash: []byte("code-u3"), UserCode: "USER-U3", Status: "approved",
		UserID: "u3", ExpiresAt: at(time.Hour), CreatedAt: t0}
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, err := range []error{
			tx.CreateToken(ctx, store.Token{ID: "t3", UserID: "u3", SecretHash: []byte("h"), CreatedAt: t0}),
			tx.CreateToken(ctx, store.Token{ID: "t1", UserID: "u1", SecretHash: []byte("h"), CreatedAt: t0}),
			tx.CreateIdentity(ctx, store.Identity{Issuer: "https://idp.example", Subject: "s3", UserID: "u3", CreatedAt: t0}),
			tx.CreateSession(ctx, store.Session{ID: "s3", UserID: "u3", SecretHash: []byte("h"), ExpiresAt: at(time.Hour), CreatedAt: t0}),
			tx.CreateLoginState(ctx, store.LoginState{StateHash: []byte("state-u3"), Provider: "p", LinkUserID: "u3",
				ExpiresAt: at(time.Hour), CreatedAt: t0}),
			tx.CreateDeviceAuth(ctx, auth),
			tx.AddMember(ctx, store.Membership{OrganizationID: "o1", UserID: "u3", Role: "member", JoinedAt: t0}),
			tx.CreateInvitation(ctx, store.Invitation{ID: "i3", OrganizationID: "o2", UserID: "u3", Role: "member",
				InviterID: "u2", Status: "pending", ExpiresAt: at(time.Hour), CreatedAt: t0}),
			tx.CreateUser(ctx, user("u4", t0)),
			tx.CreateDevice(ctx, device("d4", "o1", "u4", 4)),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	})
	for _, id := range []string{"u1", "u2", "u4"} {
		wantErrTx(t, s, store.ErrConflict, "DeleteUser of "+id+", an owner", func(ctx context.Context, tx store.Tx) error {
			return tx.DeleteUser(ctx, id)
		})
	}
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteUser(ctx, "u3") })
	for name, fn := range map[string]func(ctx context.Context, tx store.Tx) error{
		"user":  func(ctx context.Context, tx store.Tx) error { _, err := tx.GetUser(ctx, "u3"); return err },
		"token": func(ctx context.Context, tx store.Tx) error { _, err := tx.GetToken(ctx, "t3"); return err },
		"identity": func(ctx context.Context, tx store.Tx) error {
			_, err := tx.GetIdentity(ctx, "https://idp.example", "s3")
			return err
		},
		"session": func(ctx context.Context, tx store.Tx) error { _, err := tx.GetSession(ctx, "s3"); return err },
		"login state": func(ctx context.Context, tx store.Tx) error {
			_, err := tx.TakeLoginState(ctx, []byte("state-u3"))
			return err
		},
		"device authorization": func(ctx context.Context, tx store.Tx) error {
			_, err := tx.GetDeviceAuthByUserCode(ctx, "USER-U3")
			return err
		},
		"membership": func(ctx context.Context, tx store.Tx) error { _, err := tx.GetMember(ctx, "o1", "u3"); return err },
		"invitation": func(ctx context.Context, tx store.Tx) error { _, err := tx.GetInvitation(ctx, "i3"); return err },
		"again":      func(ctx context.Context, tx store.Tx) error { return tx.DeleteUser(ctx, "u3") },
	} {
		wantErrTx(t, s, store.ErrNotFound, "after DeleteUser: "+name, fn)
	}
	// Nobody else lost anything.
	getOne(t, s, store.Tx.GetToken, "t1")
	assert.Len(t, getOne(t, s, store.Tx.ListMembers, "o1"), 2, "members of o1 after DeleteUser")

	// Once the devices a user registered are gone, the user may go; the name is free again.
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.DeleteDevice(ctx, "d4"); err != nil {
			return err
		}
		if err := tx.DeleteUser(ctx, "u4"); err != nil {
			return err
		}
		return tx.CreateUser(ctx, store.User{ID: "u5", Username: "NAME-U3", CreatedAt: t0})
	})
	wantErrTx(t, s, store.ErrNotFound, "DeleteUser missing", func(ctx context.Context, tx store.Tx) error {
		return tx.DeleteUser(ctx, "nope")
	})
}
