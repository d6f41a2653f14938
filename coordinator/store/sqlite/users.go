package sqlite

// The users and tokens tables.

import (
	"context"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

const userCols = `id, username, created_at`

var scanUser = scanned(func(sc scanner, u *store.User) error {
	return sc.Scan(&u.ID, &u.Username, timeCol{&u.CreatedAt})
})

func (t *tx) CreateUser(ctx context.Context, u store.User) error {
	return t.exec(ctx, "create user "+u.ID, false,
		`INSERT INTO users (`+userCols+`) VALUES (`+placeholders(userCols)+`)`, u.ID, u.Username, fmtTime(u.CreatedAt))
}

func (t *tx) GetUser(ctx context.Context, id string) (store.User, error) {
	return get(ctx, t, "get user "+id, scanUser, `SELECT `+userCols+` FROM users WHERE id = ?`, id)
}

func (t *tx) GetUserByUsername(ctx context.Context, username string) (store.User, error) {
	return get(ctx, t, "get user by username "+username, scanUser,
		`SELECT `+userCols+` FROM users WHERE username = ?`, username)
}

func (t *tx) ListUsers(ctx context.Context) ([]store.User, error) {
	return list(ctx, t, "list users", scanUser, `SELECT `+userCols+` FROM users ORDER BY created_at, id`)
}

const tokenCols = `id, user_id, description, secret_hash, expires_at, created_at`

var scanToken = scanned(func(sc scanner, k *store.Token) error {
	return sc.Scan(&k.ID, &k.UserID, &k.Description, &k.SecretHash, optTimeCol{&k.ExpiresAt}, timeCol{&k.CreatedAt})
})

func (t *tx) CreateToken(ctx context.Context, k store.Token) error {
	return t.exec(ctx, "create token "+k.ID, false,
		`INSERT INTO tokens (`+tokenCols+`) VALUES (`+placeholders(tokenCols)+`)`,
		k.ID, k.UserID, k.Description, k.SecretHash, fmtTimePtr(k.ExpiresAt), fmtTime(k.CreatedAt))
}

func (t *tx) GetToken(ctx context.Context, id string) (store.Token, error) {
	return get(ctx, t, "get token "+id, scanToken, `SELECT `+tokenCols+` FROM tokens WHERE id = ?`, id)
}
