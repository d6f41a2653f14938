package sqlite

// Narrow reads for registration and for the peer-list cache: taken addresses, one hostname,
// an organization's revision — each touching only the rows (and columns) it needs.

import (
	"context"
	"fmt"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

var scanDeviceAddresses = scanned(func(sc scanner, a *store.DeviceAddresses) error {
	return sc.Scan(&a.DeviceID, &a.TunnelIPv4, &a.TunnelIPv6)
})

func (t *tx) ListDeviceAddresses(ctx context.Context, orgID string) ([]store.DeviceAddresses, error) {
	return list(ctx, t, "list device addresses of organization "+orgID, scanDeviceAddresses,
		`SELECT id, COALESCE(tunnel_ipv4, ''), COALESCE(tunnel_ipv6, '') FROM devices WHERE organization_id = ?`, orgID)
}

// GetDeviceByHostname compares with NOCASE, which folds exactly A-Z, so that the index of
// migration 0007 serves it.
func (t *tx) GetDeviceByHostname(ctx context.Context, orgID, hostname string) (store.Device, error) {
	return get(ctx, t, "get device by hostname "+hostname, scanDevice,
		`SELECT `+deviceReadCols+` FROM devices WHERE organization_id = ? AND hostname = ? COLLATE NOCASE
		 ORDER BY created_at, id LIMIT 1`, orgID, hostname)
}

func (t *tx) OrganizationRevision(ctx context.Context, orgID string) (int64, error) {
	var rev int64
	if err := t.tx.QueryRowContext(ctx,
		`SELECT COALESCE(MAX(revision), 0) FROM events WHERE organization_id = ? AND target_device_id = ''`,
		orgID).Scan(&rev); err != nil {
		return 0, fmt.Errorf("read revision of organization %s: %w", orgID, mapErr(err))
	}
	return rev, nil
}
