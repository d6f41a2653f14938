package postgres

// The event log: the events table, and the revision counters in store_meta.

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

const eventCols = `revision, organization_id, target_device_id, type, data, created_at`

var scanEvent = scanned(func(r pgx.Row, e *store.Event) error {
	return r.Scan(&e.Revision, &e.OrganizationID, &e.TargetDeviceID, &e.Type, &e.Data, &e.CreatedAt)
})

func (t *tx) AppendEvent(ctx context.Context, e store.Event) (int64, error) {
	return t.appendTo(ctx, "append event", "events", e)
}

// appendTo stores e in table (events or signals) under the next revision, in one statement:
// the counter row's update takes its row lock, which the next appender on any replica waits
// for until this transaction ends, so numbers follow commit order; a failed insert (a missing
// organization) or a rollback gives the number back.
func (t *tx) appendTo(ctx context.Context, what, table string, e store.Event) (int64, error) {
	var rev int64
	err := t.write(ctx, what, false, func(r pgx.Row) error { return r.Scan(&rev) },
		`WITH next AS (UPDATE store_meta SET value = value + 1 WHERE key = 'last_revision' RETURNING value)
		 INSERT INTO `+table+` (`+eventCols+`) SELECT next.value, $1, $2, $3, $4, $5 FROM next RETURNING revision`,
		e.OrganizationID, e.TargetDeviceID, e.Type, e.Data, e.CreatedAt)
	if err != nil {
		return 0, err
	}
	t.changes.Add(e.OrganizationID, e.TargetDeviceID, rev)
	return rev, nil
}

// ListEvents treats limit <= 0 as no limit. Signals (always targeted) join the log's events
// when a target is given.
func (t *tx) ListEvents(ctx context.Context, orgID, targetDeviceID string, after int64, limit int) ([]store.Event, error) {
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	return list(ctx, t, "list events of organization "+orgID, scanEvent,
		`SELECT `+eventCols+` FROM events
		 WHERE organization_id = $1 AND revision > $2 AND target_device_id IN ('', $3)
		 UNION ALL
		 SELECT `+eventCols+` FROM signals
		 WHERE organization_id = $1 AND revision > $2 AND target_device_id = $3 AND $3 <> ''
		 ORDER BY revision LIMIT $4`, orgID, after, targetDeviceID, lim)
}

func (t *tx) meta(ctx context.Context, key string) (int64, error) {
	var v int64
	if err := t.tx.QueryRow(ctx, `SELECT value FROM store_meta WHERE key = $1`, key).Scan(&v); err != nil {
		t.note(err)
		return 0, fmt.Errorf("read %s: %w", key, mapErr(err))
	}
	return v, nil
}

func (t *tx) LatestRevision(ctx context.Context) (int64, error) { return t.meta(ctx, "last_revision") }

func (t *tx) PrunedRevision(ctx context.Context) (int64, error) {
	return t.meta(ctx, "pruned_revision")
}

// PruneEvents deletes and records the highest deleted revision in one statement; when nothing
// is deleted the pruned_revision row is not written (so a prune that finds nothing does not
// conflict with another).
func (t *tx) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	return t.execCount(ctx, "prune events",
		`WITH gone AS (DELETE FROM events WHERE created_at < $1 RETURNING revision),
		 agg AS (SELECT COUNT(*) AS n, MAX(revision) AS top FROM gone),
		 upd AS (UPDATE store_meta SET value = GREATEST(value, agg.top) FROM agg
		         WHERE key = 'pruned_revision' AND agg.n > 0)
		 SELECT n FROM agg`, before)
}
