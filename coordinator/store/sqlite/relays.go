package sqlite

// The org_relays table: an organization's own relays.

import (
	"context"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

var scanOrgRelays = scanned(func(sc scanner, r *store.OrgRelays) error {
	return sc.Scan(&r.OrganizationID, listCol[string]{&r.STUNServers, "STUN servers"},
		listCol[string]{&r.TURNServers, "TURN servers"}, &r.Secret, timeCol{&r.UpdatedAt})
})

func (t *tx) SetOrgRelays(ctx context.Context, r store.OrgRelays) error {
	secret := r.Secret
	if secret == nil {
		secret = []byte{} // NOT NULL column: an empty secret is still a value
	}
	return t.exec(ctx, "set relays of organization "+r.OrganizationID, false,
		`INSERT INTO org_relays (organization_id, stun_servers, turn_servers, secret, updated_at)
		 VALUES (?, ?, ?, ?, ?)
		 ON CONFLICT (organization_id) DO UPDATE SET stun_servers = excluded.stun_servers,
			turn_servers = excluded.turn_servers, secret = excluded.secret, updated_at = excluded.updated_at`,
		r.OrganizationID, jsonList(r.STUNServers), jsonList(r.TURNServers), secret, fmtTime(r.UpdatedAt))
}

func (t *tx) GetOrgRelays(ctx context.Context, orgID string) (store.OrgRelays, error) {
	return get(ctx, t, "get relays of organization "+orgID, scanOrgRelays,
		`SELECT organization_id, stun_servers, turn_servers, secret, updated_at FROM org_relays WHERE organization_id = ?`, orgID)
}

func (t *tx) ListOrgRelays(ctx context.Context) ([]store.OrgRelays, error) {
	return list(ctx, t, "list organizations' relays", scanOrgRelays,
		`SELECT organization_id, stun_servers, turn_servers, secret, updated_at FROM org_relays ORDER BY organization_id`)
}

func (t *tx) DeleteOrgRelays(ctx context.Context, orgID string) error {
	return t.exec(ctx, "delete relays of organization "+orgID, true,
		`DELETE FROM org_relays WHERE organization_id = ?`, orgID)
}
