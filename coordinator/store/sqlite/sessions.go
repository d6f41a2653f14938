package sqlite

// The sessions table (signed-in browsers), and PruneAuth, which clears the expired rows of
// the three sign-in tables (sessions, login_states, device_auths) at once.

import (
	"context"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

const sessionCols = `id, user_id, secret_hash, expires_at, created_at`

var scanSession = scanned(func(sc scanner, s *store.Session) error {
	return sc.Scan(&s.ID, &s.UserID, &s.SecretHash, timeCol{&s.ExpiresAt}, timeCol{&s.CreatedAt})
})

func (t *tx) CreateSession(ctx context.Context, s store.Session) error {
	return t.exec(ctx, "create session "+s.ID, false,
		`INSERT INTO sessions (`+sessionCols+`) VALUES (`+placeholders(sessionCols)+`)`,
		s.ID, s.UserID, s.SecretHash, fmtTime(s.ExpiresAt), fmtTime(s.CreatedAt))
}

func (t *tx) GetSession(ctx context.Context, id string) (store.Session, error) {
	return get(ctx, t, "get session "+id, scanSession, `SELECT `+sessionCols+` FROM sessions WHERE id = ?`, id)
}

func (t *tx) DeleteSession(ctx context.Context, id string) error {
	return t.exec(ctx, "delete session "+id, true, `DELETE FROM sessions WHERE id = ?`, id)
}

func (t *tx) PruneAuth(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for _, table := range []string{"sessions", "login_states", "device_auths"} {
		n, err := t.execCount(ctx, "prune "+table, `DELETE FROM `+table+` WHERE expires_at < ?`, fmtTime(before))
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}
