package sqlite

// The event log: the events table, and the revision counters in store_meta.

import (
	"context"
	"fmt"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

const eventCols = `revision, organization_id, target_device_id, type, data, created_at`

var scanEvent = scanned(func(sc scanner, e *store.Event) error {
	return sc.Scan(&e.Revision, &e.OrganizationID, &e.TargetDeviceID, &e.Type, &e.Data, timeCol{&e.CreatedAt})
})

func (t *tx) AppendEvent(ctx context.Context, e store.Event) (int64, error) {
	return t.appendTo(ctx, "append event", "events", e)
}

// appendTo stores e in table (events or signals) under the next revision. The number comes
// from store_meta rather than MAX(revision)+1, so numbers are never reused after pruning;
// transactions are serialized, so revisions also follow commit order.
func (t *tx) appendTo(ctx context.Context, what, table string, e store.Event) (int64, error) {
	var rev int64
	if err := t.tx.QueryRowContext(ctx,
		`UPDATE store_meta SET value = value + 1 WHERE key = 'last_revision' RETURNING value`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	if err := t.exec(ctx, what, false,
		`INSERT INTO `+table+` (`+eventCols+`) VALUES (`+placeholders(eventCols)+`)`,
		rev, e.OrganizationID, e.TargetDeviceID, e.Type, e.Data, fmtTime(e.CreatedAt)); err != nil {
		return 0, err
	}
	t.changes.Add(e.OrganizationID, e.TargetDeviceID, rev)
	return rev, nil
}

// ListEvents treats limit <= 0 as no limit. Signals (always targeted) join the log's events
// when a target is given.
func (t *tx) ListEvents(ctx context.Context, orgID, targetDeviceID string, after int64, limit int) ([]store.Event, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	return list(ctx, t, "list events of organization "+orgID, scanEvent,
		`SELECT `+eventCols+` FROM events
		 WHERE organization_id = ?1 AND revision > ?2 AND target_device_id IN ('', ?3)
		 UNION ALL
		 SELECT `+eventCols+` FROM signals
		 WHERE organization_id = ?1 AND revision > ?2 AND target_device_id = ?3 AND ?3 <> ''
		 ORDER BY revision LIMIT ?4`, orgID, after, targetDeviceID, limit)
}

func (t *tx) meta(ctx context.Context, key string) (int64, error) {
	var v int64
	if err := t.tx.QueryRowContext(ctx, `SELECT value FROM store_meta WHERE key = ?`, key).Scan(&v); err != nil {
		return 0, fmt.Errorf("read %s: %w", key, mapErr(err))
	}
	return v, nil
}

func (t *tx) LatestRevision(ctx context.Context) (int64, error) {
	return t.meta(ctx, "last_revision")
}

func (t *tx) PrunedRevision(ctx context.Context) (int64, error) {
	return t.meta(ctx, "pruned_revision")
}

func (t *tx) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	const what = "prune events"
	cutoff := fmtTime(before)
	var n, maxRev int64
	if err := t.tx.QueryRowContext(ctx,
		`SELECT COUNT(*), COALESCE(MAX(revision), 0) FROM events WHERE created_at < ?`, cutoff).Scan(&n, &maxRev); err != nil {
		return 0, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	if n == 0 {
		return 0, nil
	}
	if err := t.exec(ctx, what, false, `DELETE FROM events WHERE created_at < ?`, cutoff); err != nil {
		return 0, err
	}
	if err := t.exec(ctx, what, false,
		`UPDATE store_meta SET value = MAX(value, ?) WHERE key = 'pruned_revision'`, maxRev); err != nil {
		return 0, err
	}
	return n, nil
}
