package postgres

// The identities table: accounts at OpenID providers linked to users.

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

const identityCols = `issuer, subject, user_id, email, created_at`

var scanIdentity = scanned(func(r pgx.Row, i *store.Identity) error {
	return r.Scan(&i.Issuer, &i.Subject, &i.UserID, &i.Email, &i.CreatedAt)
})

func (t *tx) CreateIdentity(ctx context.Context, i store.Identity) error {
	return t.exec(ctx, "create identity "+i.Subject+" at "+i.Issuer, false,
		`INSERT INTO identities (`+identityCols+`) VALUES ($1, $2, $3, $4, $5)`,
		i.Issuer, i.Subject, i.UserID, i.Email, i.CreatedAt)
}

func (t *tx) GetIdentity(ctx context.Context, issuer, subject string) (store.Identity, error) {
	return get(ctx, t, "get identity "+subject+" at "+issuer, scanIdentity,
		`SELECT `+identityCols+` FROM identities WHERE issuer = $1 AND subject = $2`, issuer, subject)
}

// ListIdentitiesForUser orders by creation time, then issuer and subject (the key).
func (t *tx) ListIdentitiesForUser(ctx context.Context, userID string) ([]store.Identity, error) {
	return list(ctx, t, "list identities of user "+userID, scanIdentity,
		`SELECT `+identityCols+` FROM identities WHERE user_id = $1 ORDER BY created_at, issuer COLLATE "C", subject COLLATE "C"`, userID)
}
