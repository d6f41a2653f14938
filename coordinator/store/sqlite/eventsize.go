package sqlite

// The size bound of every organization's event log (PruneEventsOverSize).

import "context"

// PruneEventsOverSize finds, per organization, the highest revision at which the bytes of that
// event and every newer one exceed maxBytes (a running sum from the newest down, which only
// grows, so everything at or below that revision goes), then deletes by the (organization,
// revision) index. Transactions are serialized, so nothing is appended in between.
func (t *tx) PruneEventsOverSize(ctx context.Context, maxBytes int64) (int64, error) {
	const what = "prune events over the size bound"
	type cut struct {
		org string
		top int64
	}
	cuts, err := list(ctx, t, what, func(sc scanner) (cut, error) {
		var c cut
		return c, sc.Scan(&c.org, &c.top)
	}, `SELECT organization_id, MAX(revision) FROM (
			SELECT organization_id, revision, SUM(COALESCE(LENGTH(data), 0)) OVER (
				PARTITION BY organization_id ORDER BY revision DESC
				ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS newer
			FROM events)
		WHERE newer > ?1 GROUP BY organization_id ORDER BY organization_id`, maxBytes)
	if err != nil {
		return 0, err
	}
	var n, top int64
	for _, c := range cuts {
		k, err := t.execCount(ctx, what, `DELETE FROM events WHERE organization_id = ? AND revision <= ?`, c.org, c.top)
		if err != nil {
			return 0, err
		}
		n, top = n+k, max(top, c.top)
	}
	if n == 0 {
		return 0, nil
	}
	if err := t.exec(ctx, what, false,
		`UPDATE store_meta SET value = MAX(value, ?) WHERE key = 'pruned_revision'`, top); err != nil {
		return 0, err
	}
	return n, nil
}
