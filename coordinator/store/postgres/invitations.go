package postgres

// The invitations and registration keys tables.

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

const invCols = `id, organization_id, user_id, role, inviter_id, status, expires_at, created_at`

var scanInv = scanned(func(r pgx.Row, i *store.Invitation) error {
	return r.Scan(&i.ID, &i.OrganizationID, &i.UserID, &i.Role, &i.InviterID, &i.Status, &i.ExpiresAt, &i.CreatedAt)
})

func (t *tx) CreateInvitation(ctx context.Context, i store.Invitation) error {
	return t.exec(ctx, "create invitation "+i.ID, false,
		`INSERT INTO invitations (`+invCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		i.ID, i.OrganizationID, i.UserID, i.Role, i.InviterID, i.Status, i.ExpiresAt, i.CreatedAt)
}

func (t *tx) GetInvitation(ctx context.Context, id string) (store.Invitation, error) {
	return get(ctx, t, "get invitation "+id, scanInv, `SELECT `+invCols+` FROM invitations WHERE id = $1`, id)
}

func (t *tx) SetInvitationStatus(ctx context.Context, id, status string) error {
	return t.exec(ctx, "set invitation status "+id, true, `UPDATE invitations SET status = $1 WHERE id = $2`, status, id)
}

func (t *tx) ListInvitationsForUser(ctx context.Context, userID string) ([]store.Invitation, error) {
	return list(ctx, t, "list invitations for user "+userID, scanInv,
		`SELECT `+invCols+` FROM invitations WHERE user_id = $1 ORDER BY created_at, id`, userID)
}

func (t *tx) ListInvitationsForOrganization(ctx context.Context, orgID string) ([]store.Invitation, error) {
	return list(ctx, t, "list invitations for organization "+orgID, scanInv,
		`SELECT `+invCols+` FROM invitations WHERE organization_id = $1 ORDER BY created_at, id`, orgID)
}

const regKeyCols = `id, organization_id, owner_id, description, secret_hash, single_use, ephemeral, expires_at, used, created_at`

var scanRegKey = scanned(func(r pgx.Row, k *store.RegKey) error {
	return r.Scan(&k.ID, &k.OrganizationID, &k.OwnerID, &k.Description, &k.SecretHash,
		&k.SingleUse, &k.Ephemeral, &k.ExpiresAt, &k.Used, &k.CreatedAt)
})

func (t *tx) CreateRegKey(ctx context.Context, k store.RegKey) error {
	return t.exec(ctx, "create registration key "+k.ID, false,
		`INSERT INTO reg_keys (`+regKeyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		k.ID, k.OrganizationID, k.OwnerID, k.Description, k.SecretHash, k.SingleUse, k.Ephemeral,
		k.ExpiresAt, k.Used, k.CreatedAt)
}

func (t *tx) GetRegKey(ctx context.Context, id string) (store.RegKey, error) {
	return get(ctx, t, "get registration key "+id, scanRegKey, `SELECT `+regKeyCols+` FROM reg_keys WHERE id = $1`, id)
}

func (t *tx) ListRegKeys(ctx context.Context, orgID string) ([]store.RegKey, error) {
	return list(ctx, t, "list registration keys of organization "+orgID, scanRegKey,
		`SELECT `+regKeyCols+` FROM reg_keys WHERE organization_id = $1 ORDER BY created_at, id`, orgID)
}

func (t *tx) MarkRegKeyUsed(ctx context.Context, id string) error {
	return t.exec(ctx, "mark registration key used "+id, true, `UPDATE reg_keys SET used = true WHERE id = $1`, id)
}

func (t *tx) DeleteRegKey(ctx context.Context, id string) error {
	return t.exec(ctx, "delete registration key "+id, true, `DELETE FROM reg_keys WHERE id = $1`, id)
}
