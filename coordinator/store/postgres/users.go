package postgres

// The users and tokens tables.

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

const userCols = `id, username, created_at`

var scanUser = scanned(func(r pgx.Row, u *store.User) error {
	return r.Scan(&u.ID, &u.Username, &u.CreatedAt)
})

func (t *tx) CreateUser(ctx context.Context, u store.User) error {
	return t.exec(ctx, "create user "+u.ID, false,
		`INSERT INTO users (id, username, created_at) VALUES ($1, $2, $3)`, u.ID, u.Username, u.CreatedAt)
}

func (t *tx) GetUser(ctx context.Context, id string) (store.User, error) {
	return get(ctx, t, "get user "+id, scanUser, `SELECT `+userCols+` FROM users WHERE id = $1`, id)
}

// GetUserByUsername folds ASCII case like the unique index users_username_fold, which serves
// the lookup.
func (t *tx) GetUserByUsername(ctx context.Context, username string) (store.User, error) {
	return get(ctx, t, "get user by username "+username, scanUser,
		`SELECT `+userCols+` FROM users WHERE nexodus_ascii_fold(username) = nexodus_ascii_fold($1)`, username)
}

func (t *tx) ListUsers(ctx context.Context) ([]store.User, error) {
	return list(ctx, t, "list users", scanUser, `SELECT `+userCols+` FROM users ORDER BY created_at, id`)
}

// DeleteUser refuses while the user owns an organization or a device: those are the domain
// layer's to remove first (organizations.owner_id would also block the delete, but as a
// foreign key error, which reads as "not found"). Everything else of the user cascades.
func (t *tx) DeleteUser(ctx context.Context, id string) error {
	what := "delete user " + id
	var orgs, devices int
	if err := t.tx.QueryRow(ctx, `SELECT
		(SELECT COUNT(*) FROM organizations WHERE owner_id = $1),
		(SELECT COUNT(*) FROM devices WHERE owner_id = $1)`, id).Scan(&orgs, &devices); err != nil {
		t.note(err)
		return fmt.Errorf("%s: %w", what, mapErr(err))
	}
	if orgs > 0 || devices > 0 {
		return fmt.Errorf("%s: still owns %d organizations and %d devices: %w", what, orgs, devices, store.ErrConflict)
	}
	return t.exec(ctx, what, true, `DELETE FROM users WHERE id = $1`, id)
}

const tokenCols = `id, user_id, description, secret_hash, expires_at, created_at`

var scanToken = scanned(func(r pgx.Row, k *store.Token) error {
	return r.Scan(&k.ID, &k.UserID, &k.Description, &k.SecretHash, &k.ExpiresAt, &k.CreatedAt)
})

func (t *tx) CreateToken(ctx context.Context, k store.Token) error {
	return t.exec(ctx, "create token "+k.ID, false,
		`INSERT INTO tokens (`+tokenCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.ID, k.UserID, k.Description, k.SecretHash, k.ExpiresAt, k.CreatedAt)
}

func (t *tx) GetToken(ctx context.Context, id string) (store.Token, error) {
	return get(ctx, t, "get token "+id, scanToken, `SELECT `+tokenCols+` FROM tokens WHERE id = $1`, id)
}

func (t *tx) ListTokensForUser(ctx context.Context, userID string) ([]store.Token, error) {
	return list(ctx, t, "list tokens of user "+userID, scanToken,
		`SELECT `+tokenCols+` FROM tokens WHERE user_id = $1 ORDER BY created_at, id`, userID)
}

func (t *tx) DeleteToken(ctx context.Context, id string) error {
	return t.exec(ctx, "delete token "+id, true, `DELETE FROM tokens WHERE id = $1`, id)
}
