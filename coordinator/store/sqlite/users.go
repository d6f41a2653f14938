package sqlite

// The users and tokens tables.

import (
	"context"
	"fmt"

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
		`SELECT `+userCols+` FROM users WHERE username = ? COLLATE NOCASE`, username)
}

// DeleteUser refuses while the user owns an organization or a device: those are the domain
// layer's to remove first (organizations.owner_id would also block the delete, but as a
// foreign key error, which reads as "not found"). Everything else of the user cascades.
func (t *tx) DeleteUser(ctx context.Context, id string) error {
	what := "delete user " + id
	var orgs, devices int
	if err := t.tx.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM organizations WHERE owner_id = ?),
		(SELECT COUNT(*) FROM devices WHERE owner_id = ?)`, id, id).Scan(&orgs, &devices); err != nil {
		return fmt.Errorf("%s: %w", what, mapErr(err))
	}
	if orgs > 0 || devices > 0 {
		return fmt.Errorf("%s: still owns %d organizations and %d devices: %w", what, orgs, devices, store.ErrConflict)
	}
	return t.exec(ctx, what, true, `DELETE FROM users WHERE id = ?`, id)
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

func (t *tx) ListTokensForUser(ctx context.Context, userID string) ([]store.Token, error) {
	return list(ctx, t, "list tokens of user "+userID, scanToken,
		`SELECT `+tokenCols+` FROM tokens WHERE user_id = ? ORDER BY created_at, id`, userID)
}

func (t *tx) DeleteToken(ctx context.Context, id string) error {
	return t.exec(ctx, "delete token "+id, true, `DELETE FROM tokens WHERE id = ?`, id)
}
