package postgres

// The size bound of every organization's event log (PruneEventsOverSize).

import "context"

// PruneEventsOverSize finds, per organization, the highest revision at which the bytes of that
// event and every newer one exceed maxBytes (a running sum from the newest down, which only
// grows, so everything at or below that revision goes), deletes those events and records the
// highest deleted revision, in one statement. As with PruneEvents, the pruned_revision row is
// not written when nothing is deleted, so a bound that holds conflicts with nobody.
func (t *tx) PruneEventsOverSize(ctx context.Context, maxBytes int64) (int64, error) {
	return t.execCount(ctx, "prune events over the size bound",
		`WITH sized AS (
			SELECT organization_id, revision, SUM(COALESCE(octet_length(data), 0)) OVER (
				PARTITION BY organization_id ORDER BY revision DESC
				ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS newer
			FROM events),
		 cut AS (SELECT organization_id, MAX(revision) AS top FROM sized WHERE newer > $1 GROUP BY organization_id),
		 gone AS (DELETE FROM events e USING cut
		          WHERE e.organization_id = cut.organization_id AND e.revision <= cut.top RETURNING e.revision),
		 agg AS (SELECT COUNT(*) AS n, MAX(revision) AS top FROM gone),
		 upd AS (UPDATE store_meta SET value = GREATEST(value, agg.top) FROM agg
		         WHERE key = 'pruned_revision' AND agg.n > 0)
		 SELECT n FROM agg`, maxBytes)
}
