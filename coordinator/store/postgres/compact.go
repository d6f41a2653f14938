package postgres

// Compact: nothing for the engine to do.

import "context"

// Compact implements store.Store and does nothing: PostgreSQL's files belong to the server.
// A row overwritten or deleted stays as a dead tuple until VACUUM reclaims its space (and only
// VACUUM FULL rewrites the table), and in WAL segments and base backups until they are
// recycled. Scrubbing those is the database operator's business (VACUUM FULL, WAL retention,
// encrypted storage), not a client's.
func (s *Store) Compact(ctx context.Context) error {
	if s.isClosed() {
		return ErrClosed
	}
	return ctx.Err()
}
