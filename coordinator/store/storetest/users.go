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
	// Usernames are matched exactly.
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetUserByUsername, "NAME-A", "GetUserByUsername other case")
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
}
