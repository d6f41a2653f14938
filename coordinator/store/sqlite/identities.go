package sqlite

// The identities table: accounts at OpenID providers linked to users.

import (
	"context"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

const identityCols = `issuer, subject, user_id, email, created_at`

var scanIdentity = scanned(func(sc scanner, i *store.Identity) error {
	return sc.Scan(&i.Issuer, &i.Subject, &i.UserID, &i.Email, timeCol{&i.CreatedAt})
})

func (t *tx) CreateIdentity(ctx context.Context, i store.Identity) error {
	return t.exec(ctx, "create identity "+i.Subject+" at "+i.Issuer, false,
		`INSERT INTO identities (`+identityCols+`) VALUES (`+placeholders(identityCols)+`)`,
		i.Issuer, i.Subject, i.UserID, i.Email, fmtTime(i.CreatedAt))
}

func (t *tx) GetIdentity(ctx context.Context, issuer, subject string) (store.Identity, error) {
	return get(ctx, t, "get identity "+subject+" at "+issuer, scanIdentity,
		`SELECT `+identityCols+` FROM identities WHERE issuer = ? AND subject = ?`, issuer, subject)
}

// ListIdentitiesForUser orders by creation time, then issuer and subject (the key).
func (t *tx) ListIdentitiesForUser(ctx context.Context, userID string) ([]store.Identity, error) {
	return list(ctx, t, "list identities of user "+userID, scanIdentity,
		`SELECT `+identityCols+` FROM identities WHERE user_id = ? ORDER BY created_at, issuer, subject`, userID)
}
