package sqlite

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
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	return list(ctx, t, "list expired ephemeral devices", scanDevice,
		`SELECT `+deviceReadCols+` FROM devices d
		 WHERE d.ephemeral = 1 AND d.last_seen_at < ?
		   AND NOT EXISTS (SELECT 1 FROM presence p WHERE p.device_id = d.id AND p.expires_at > ?)
		 ORDER BY d.last_seen_at, d.id LIMIT ?`, fmtTime(seenBefore), fmtTime(now), limit)
}
