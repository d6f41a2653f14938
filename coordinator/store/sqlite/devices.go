package sqlite

// The devices table.

import (
	"context"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// deviceCols are the columns of a device but its ID, in the order deviceValues gives them.
const deviceCols = `organization_id, owner_id, reg_key_id, public_key, hostname,
	tunnel_ipv4, tunnel_ipv6, endpoints, symmetric_nat, child_prefixes,
	ephemeral, token_id, token_hash, pending_token_id, pending_token_hash, last_seen_at, created_at, updated_at`

// deviceReadCols reads a device back, an unset (NULL) tunnel address as "".
const deviceReadCols = `id, organization_id, owner_id, reg_key_id, public_key, hostname,
	COALESCE(tunnel_ipv4, ''), COALESCE(tunnel_ipv6, ''), endpoints, symmetric_nat, child_prefixes,
	ephemeral, token_id, token_hash, pending_token_id, pending_token_hash, last_seen_at, created_at, updated_at`

// endpointJSON fixes the stored JSON field names independently of the Go field names.
type endpointJSON struct {
	Source  string `json:"source"`
	Address string `json:"address"`
}

// deviceValues are the values of deviceCols for d.
func deviceValues(d store.Device) []any {
	eps := make([]endpointJSON, 0, len(d.Endpoints))
	for _, e := range d.Endpoints {
		eps = append(eps, endpointJSON(e))
	}
	return []any{d.OrganizationID, d.OwnerID, d.RegKeyID, d.PublicKey, d.Hostname,
		nullIfEmpty(d.TunnelIPv4), nullIfEmpty(d.TunnelIPv6), jsonList(eps), d.SymmetricNAT, jsonList(d.ChildPrefixes),
		d.Ephemeral, d.TokenID, d.TokenHash, d.PendingTokenID, d.PendingTokenHash,
		fmtTime(d.LastSeenAt), fmtTime(d.CreatedAt), fmtTime(d.UpdatedAt)}
}

func scanDevice(sc scanner) (store.Device, error) {
	var d store.Device
	var eps []endpointJSON
	err := sc.Scan(&d.ID, &d.OrganizationID, &d.OwnerID, &d.RegKeyID, &d.PublicKey, &d.Hostname,
		&d.TunnelIPv4, &d.TunnelIPv6, listCol[endpointJSON]{&eps, "endpoints"}, &d.SymmetricNAT,
		listCol[string]{&d.ChildPrefixes, "child prefixes"}, &d.Ephemeral, &d.TokenID, &d.TokenHash,
		&d.PendingTokenID, &d.PendingTokenHash, timeCol{&d.LastSeenAt}, timeCol{&d.CreatedAt}, timeCol{&d.UpdatedAt})
	for _, e := range eps {
		d.Endpoints = append(d.Endpoints, store.Endpoint(e))
	}
	return d, err
}

func (t *tx) CreateDevice(ctx context.Context, d store.Device) error {
	return t.exec(ctx, "create device "+d.ID, false,
		`INSERT INTO devices (id, `+deviceCols+`) VALUES (?, `+placeholders(deviceCols)+`)`,
		append([]any{d.ID}, deviceValues(d)...)...)
}

func (t *tx) GetDevice(ctx context.Context, id string) (store.Device, error) {
	return get(ctx, t, "get device "+id, scanDevice, `SELECT `+deviceReadCols+` FROM devices WHERE id = ?`, id)
}

func (t *tx) GetDeviceByPublicKey(ctx context.Context, publicKey string) (store.Device, error) {
	return get(ctx, t, "get device by public key "+publicKey, scanDevice,
		`SELECT `+deviceReadCols+` FROM devices WHERE public_key = ?`, publicKey)
}

func (t *tx) ListDevices(ctx context.Context, orgID string) ([]store.Device, error) {
	return list(ctx, t, "list devices of organization "+orgID, scanDevice,
		`SELECT `+deviceReadCols+` FROM devices WHERE organization_id = ? ORDER BY created_at, id`, orgID)
}

func (t *tx) ListDevicesForOwner(ctx context.Context, ownerID string) ([]store.Device, error) {
	return list(ctx, t, "list devices of owner "+ownerID, scanDevice,
		`SELECT `+deviceReadCols+` FROM devices WHERE owner_id = ? ORDER BY created_at, id`, ownerID)
}

func (t *tx) UpdateDevice(ctx context.Context, d store.Device) error {
	return t.exec(ctx, "update device "+d.ID, true,
		`UPDATE devices SET `+assignments(deviceCols)+` WHERE id = ?`, append(deviceValues(d), d.ID)...)
}

func (t *tx) DeleteDevice(ctx context.Context, id string) error {
	return t.exec(ctx, "delete device "+id, true, `DELETE FROM devices WHERE id = ?`, id)
}
