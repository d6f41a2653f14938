package postgres

// The presence table: which replica holds which device's event stream, until when.

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func (t *tx) PutPresence(ctx context.Context, p store.Presence) error {
	return t.exec(ctx, fmt.Sprintf("put presence of device %s on replica %s", p.DeviceID, p.ReplicaID), false,
		`INSERT INTO presence (device_id, replica_id, organization_id, expires_at) VALUES ($1, $2, $3, $4)
		 ON CONFLICT (device_id, replica_id) DO UPDATE SET
			organization_id = excluded.organization_id, expires_at = excluded.expires_at`,
		p.DeviceID, p.ReplicaID, p.OrganizationID, p.ExpiresAt)
}

func (t *tx) DeletePresence(ctx context.Context, deviceID, replicaID string) error {
	return t.exec(ctx, fmt.Sprintf("delete presence of device %s on replica %s", deviceID, replicaID), false,
		`DELETE FROM presence WHERE device_id = $1 AND replica_id = $2`, deviceID, replicaID)
}

// OnlineDevices goes by the device's organization rather than the row's, so a device that
// moved is listed where it is now.
func (t *tx) OnlineDevices(ctx context.Context, orgID string, now time.Time) ([]string, error) {
	return list(ctx, t, "list online devices of organization "+orgID,
		scanned(func(r pgx.Row, id *string) error { return r.Scan(id) }),
		`SELECT DISTINCT p.device_id FROM presence p JOIN devices d ON d.id = p.device_id
		 WHERE d.organization_id = $1 AND p.expires_at > $2`, orgID, now)
}

func (t *tx) PrunePresence(ctx context.Context, before time.Time) (int64, error) {
	return t.execCount(ctx, "prune presence",
		`WITH gone AS (DELETE FROM presence WHERE expires_at < $1 RETURNING 1) SELECT COUNT(*) FROM gone`, before)
}
