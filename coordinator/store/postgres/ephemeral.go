package postgres

// Ephemeral devices whose grace period is over: gone from every replica's streams (no
// unexpired presence row) and not seen since the deadline.

import (
	"context"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// ExpiredEphemeralDevices reads the partial index of migration 0008 (ephemeral devices by
// last_seen_at), so a sweep costs the ephemeral devices past their deadline, not every device.
func (t *tx) ExpiredEphemeralDevices(ctx context.Context, seenBefore, now time.Time, limit int) ([]store.Device, error) {
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	return list(ctx, t, "list expired ephemeral devices", scanDevice,
		`SELECT `+deviceReadCols+` FROM devices d
		 WHERE d.ephemeral AND d.last_seen_at < $1
		   AND NOT EXISTS (SELECT 1 FROM presence p WHERE p.device_id = d.id AND p.expires_at > $2)
		 ORDER BY d.last_seen_at, d.id LIMIT $3`, seenBefore, now, lim)
}
