package postgres

// The sessions table (signed-in browsers), and PruneAuth, which clears the expired rows of
// the three sign-in tables (sessions, login_states, device_auths) at once.

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

const sessionCols = `id, user_id, secret_hash, expires_at, created_at`

var scanSession = scanned(func(r pgx.Row, s *store.Session) error {
	return r.Scan(&s.ID, &s.UserID, &s.SecretHash, &s.ExpiresAt, &s.CreatedAt)
})

func (t *tx) CreateSession(ctx context.Context, s store.Session) error {
	return t.exec(ctx, "create session "+s.ID, false,
		`INSERT INTO sessions (`+sessionCols+`) VALUES ($1, $2, $3, $4, $5)`,
		s.ID, s.UserID, s.SecretHash, s.ExpiresAt, s.CreatedAt)
}

func (t *tx) GetSession(ctx context.Context, id string) (store.Session, error) {
	return get(ctx, t, "get session "+id, scanSession, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id)
}

func (t *tx) DeleteSession(ctx context.Context, id string) error {
	return t.exec(ctx, "delete session "+id, true, `DELETE FROM sessions WHERE id = $1`, id)
}

func (t *tx) PruneAuth(ctx context.Context, before time.Time) (int64, error) {
	return t.execCount(ctx, "prune sign-in state",
		`WITH s AS (DELETE FROM sessions WHERE expires_at < $1 RETURNING 1),
		 l AS (DELETE FROM login_states WHERE expires_at < $1 RETURNING 1),
		 d AS (DELETE FROM device_auths WHERE expires_at < $1 RETURNING 1)
		 SELECT (SELECT COUNT(*) FROM s) + (SELECT COUNT(*) FROM l) + (SELECT COUNT(*) FROM d)`, before)
}
