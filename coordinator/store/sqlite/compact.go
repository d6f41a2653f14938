package sqlite

// Compact: scrubbing deleted and overwritten rows out of the database's files.

import (
	"context"
	"errors"
	"fmt"
)

// ErrCheckpointBusy is returned (wrapped) by Compact when readers kept the WAL from being
// checkpointed and truncated within the busy timeout: what was overwritten may still sit in
// the -wal file. Compact again when the database is idle.
var ErrCheckpointBusy = errors.New("sqlite: WAL checkpoint blocked by readers")

// Compact implements store.Store: VACUUM rebuilds the database file from its live rows, so no
// free page or unused cell space keeps old content (secure_delete zeroes what is deleted from
// now on, not what an older version left behind); then a TRUNCATE checkpoint copies the WAL
// into the file and cuts the WAL to zero bytes, so no old page image stays in it. (The -shm
// file holds only the WAL's index, never row content.) It runs on the writer connection, so
// it waits for the running Tx and holds off the next.
func (s *Store) Compact(ctx context.Context) error {
	if s.isClosed() {
		return ErrClosed
	}
	select {
	case s.writing <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("sqlite: compact: %w", ctx.Err())
	}
	defer func() { <-s.writing }()
	if _, err := s.db.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("sqlite: compact: vacuum: %w", s.closedOr(mapErr(err)))
	}
	// The result row: busy (1 when readers kept the checkpoint from finishing), the WAL's
	// frames, and how many of them were checkpointed.
	var busy, frames, done int64
	if err := s.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &done); err != nil {
		return fmt.Errorf("sqlite: compact: checkpoint: %w", s.closedOr(mapErr(err)))
	}
	if busy != 0 {
		return fmt.Errorf("sqlite: compact: %w (%d of %d frames copied)", ErrCheckpointBusy, done, frames)
	}
	return nil
}

// closedOr is ErrClosed (wrapping err) when Close won a race with the caller's check.
func (s *Store) closedOr(err error) error {
	if s.isClosed() {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}
