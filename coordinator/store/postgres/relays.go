package postgres

// The org_relays table: an organization's own relays.

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

var scanOrgRelays = scanned(func(r pgx.Row, o *store.OrgRelays) error {
	return r.Scan(&o.OrganizationID, &o.STUNServers, &o.TURNServers, &o.Secret, &o.UpdatedAt)
})

func (t *tx) SetOrgRelays(ctx context.Context, r store.OrgRelays) error {
	return t.exec(ctx, "set relays of organization "+r.OrganizationID, false,
		`INSERT INTO org_relays (organization_id, stun_servers, turn_servers, secret, updated_at)
		 VALUES ($1, $2, $3, $4, $5)
		 ON CONFLICT (organization_id) DO UPDATE SET stun_servers = excluded.stun_servers,
			turn_servers = excluded.turn_servers, secret = excluded.secret, updated_at = excluded.updated_at`,
		r.OrganizationID, nonNilStrings(r.STUNServers), nonNilStrings(r.TURNServers), nonNilBytes(r.Secret), r.UpdatedAt)
}

func (t *tx) GetOrgRelays(ctx context.Context, orgID string) (store.OrgRelays, error) {
	return get(ctx, t, "get relays of organization "+orgID, scanOrgRelays,
		`SELECT organization_id, stun_servers, turn_servers, secret, updated_at FROM org_relays WHERE organization_id = $1`, orgID)
}

func (t *tx) ListOrgRelays(ctx context.Context) ([]store.OrgRelays, error) {
	return list(ctx, t, "list organizations' relays", scanOrgRelays,
		`SELECT organization_id, stun_servers, turn_servers, secret, updated_at FROM org_relays ORDER BY organization_id`)
}

func (t *tx) DeleteOrgRelays(ctx context.Context, orgID string) error {
	return t.exec(ctx, "delete relays of organization "+orgID, true, `DELETE FROM org_relays WHERE organization_id = $1`, orgID)
}
