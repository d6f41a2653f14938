package postgres

// The devices table.

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// deviceReadCols reads a device back, an unset (NULL) tunnel address as "".
const deviceReadCols = `id, organization_id, owner_id, reg_key_id, public_key, hostname,
	COALESCE(tunnel_ipv4, ''), COALESCE(tunnel_ipv6, ''), endpoints, symmetric_nat, child_prefixes,
	ephemeral, token_id, token_hash, pending_token_id, pending_token_hash, last_seen_at, created_at, updated_at`

// endpointJSON fixes the stored JSON field names independently of the Go field names (the same
// as the SQLite engine's).
type endpointJSON struct {
	Source  string `json:"source"`
	Address string `json:"address"`
}

// deviceValues are $2.. of the INSERT and UPDATE statements below, in their column order.
func deviceValues(d store.Device) []any {
	eps := make([]endpointJSON, 0, len(d.Endpoints))
	for _, e := range d.Endpoints {
		eps = append(eps, endpointJSON(e))
	}
	return []any{d.OrganizationID, d.OwnerID, d.RegKeyID, d.PublicKey, d.Hostname,
		nullIfEmpty(d.TunnelIPv4), nullIfEmpty(d.TunnelIPv6), jsonText(eps), d.SymmetricNAT, nonNilStrings(d.ChildPrefixes),
		d.Ephemeral, d.TokenID, d.TokenHash, d.PendingTokenID, d.PendingTokenHash,
		d.LastSeenAt, d.CreatedAt, d.UpdatedAt}
}

func scanDevice(r pgx.Row) (store.Device, error) {
	var d store.Device
	var eps []endpointJSON
	err := r.Scan(&d.ID, &d.OrganizationID, &d.OwnerID, &d.RegKeyID, &d.PublicKey, &d.Hostname,
		&d.TunnelIPv4, &d.TunnelIPv6, &eps, &d.SymmetricNAT, &d.ChildPrefixes, &d.Ephemeral, &d.TokenID, &d.TokenHash,
		&d.PendingTokenID, &d.PendingTokenHash, &d.LastSeenAt, &d.CreatedAt, &d.UpdatedAt)
	for _, e := range eps {
		d.Endpoints = append(d.Endpoints, store.Endpoint(e))
	}
	return d, err
}

func (t *tx) CreateDevice(ctx context.Context, d store.Device) error {
	return t.exec(ctx, "create device "+d.ID, false,
		`INSERT INTO devices (id, organization_id, owner_id, reg_key_id, public_key, hostname,
			tunnel_ipv4, tunnel_ipv6, endpoints, symmetric_nat, child_prefixes, ephemeral, token_id, token_hash,
			pending_token_id, pending_token_hash, last_seen_at, created_at, updated_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
		append([]any{d.ID}, deviceValues(d)...)...)
}

func (t *tx) GetDevice(ctx context.Context, id string) (store.Device, error) {
	return get(ctx, t, "get device "+id, scanDevice, `SELECT `+deviceReadCols+` FROM devices WHERE id = $1`, id)
}

func (t *tx) GetDeviceByPublicKey(ctx context.Context, publicKey string) (store.Device, error) {
	return get(ctx, t, "get device by public key "+publicKey, scanDevice,
		`SELECT `+deviceReadCols+` FROM devices WHERE public_key = $1`, publicKey)
}

func (t *tx) ListDevices(ctx context.Context, orgID string) ([]store.Device, error) {
	return list(ctx, t, "list devices of organization "+orgID, scanDevice,
		`SELECT `+deviceReadCols+` FROM devices WHERE organization_id = $1 ORDER BY created_at, id`, orgID)
}

func (t *tx) ListDevicesForOwner(ctx context.Context, ownerID string) ([]store.Device, error) {
	return list(ctx, t, "list devices of owner "+ownerID, scanDevice,
		`SELECT `+deviceReadCols+` FROM devices WHERE owner_id = $1 ORDER BY created_at, id`, ownerID)
}

func (t *tx) UpdateDevice(ctx context.Context, d store.Device) error {
	return t.exec(ctx, "update device "+d.ID, true,
		`UPDATE devices SET organization_id = $2, owner_id = $3, reg_key_id = $4, public_key = $5, hostname = $6,
			tunnel_ipv4 = $7, tunnel_ipv6 = $8, endpoints = $9, symmetric_nat = $10, child_prefixes = $11,
			ephemeral = $12, token_id = $13, token_hash = $14, pending_token_id = $15, pending_token_hash = $16,
			last_seen_at = $17, created_at = $18, updated_at = $19
		 WHERE id = $1`, append([]any{d.ID}, deviceValues(d)...)...)
}

func (t *tx) DeleteDevice(ctx context.Context, id string) error {
	return t.exec(ctx, "delete device "+id, true, `DELETE FROM devices WHERE id = $1`, id)
}
