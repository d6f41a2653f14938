// Package sqlite is the coordinator's embedded storage engine: one SQLite file, opened through
// the pure-Go driver modernc.org/sqlite (no cgo), with schema migrations applied at Open.
//
// The schema lives in migrations/NNNN_*.sql, embedded and applied in order; schema_migrations
// records which ran. Times are stored as fixed-width UTC RFC 3339 text with nanoseconds, lists
// as JSON text. Uniqueness and ON DELETE CASCADE rules are the database's, so they hold under
// concurrency: UNIQUE violations come back as store.ErrConflict and references to missing
// organizations or users as store.ErrNotFound. Event revisions come from a counter row, so they
// are never reused, even after pruning.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// ErrClosed is returned (wrapped) by Tx after Close and by every Close after the first. It
// wraps net.ErrClosed, the one sentinel every Close of the project answers with.
var ErrClosed = fmt.Errorf("sqlite store: %w", net.ErrClosed)

// busyTimeout bounds how long a connection waits for a lock held by another handle on the same
// file (another process, or a second Store opened on the same path).
const busyTimeout = 10 * time.Second

// Store is a store.Store backed by one SQLite database file.
type Store struct {
	db *sql.DB

	mu     sync.Mutex
	closed bool
	nextID int
	subs   map[int]chan struct{}
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it if missing) the SQLite database at path and brings its schema up to
// date.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: open: empty path")
	}
	q := url.Values{}
	// Every connection gets the same settings: the pragmas are per connection, not per file.
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	// Take the write lock at BEGIN: a deferred transaction that reads and then writes can fail
	// with SQLITE_BUSY when another writer got in between, which busy_timeout cannot fix.
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()

	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// Every Tx may write and SQLite admits one writer at a time, so more connections would only
	// wait inside SQLite's sleeping busy handler. One connection makes transactions queue in
	// database/sql instead, in order and honoring each caller's context.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)

	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return &Store{db: db, subs: make(map[int]chan struct{})}, nil
}

// Tx implements store.Store. Transactions are serialized: they run one at a time on the
// store's single connection, in the order they asked for it, each waiting no longer than its
// context allows. So fn must not call Tx itself: the inner call would wait for the outer one to
// finish, which it never does, until ctx ends.
func (s *Store) Tx(ctx context.Context, fn func(store.Tx) error) (err error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed { // Close won the race with the check above
			return fmt.Errorf("sqlite: begin: %w: %w", ErrClosed, err)
		}
		return fmt.Errorf("sqlite: begin: %w", mapErr(err))
	}
	t := &tx{tx: sqlTx}
	committed := false
	defer func() {
		// Also runs when fn panics, so the connection is never left inside a transaction.
		if !committed {
			_ = sqlTx.Rollback()
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", mapErr(err))
	}
	committed = true
	if t.appended {
		s.notify()
	}
	return nil
}

// notify wakes every subscriber without blocking: a full channel already has a wake-up pending,
// which is all a subscriber needs to go and read the log.
func (s *Store) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Subscribe implements store.Store. Notifications are in-process only: commits made through
// another Store on the same file (another process) are not heard. The channel is never closed;
// after Close it simply never fires again.
func (s *Store) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ch, func() {}
	}
	id := s.nextID
	s.nextID++
	s.subs[id] = ch
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.subs, id)
			s.mu.Unlock()
		})
	}
}

// Close implements store.Store. It waits for running transactions to finish. Calls after the
// first return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.subs = map[int]chan struct{}{}
	s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// mapErr turns driver errors into the store's sentinels, keeping the original text.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if errors.Is(err, sql.ErrConnDone) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			// A row refers to one that does not exist (an unknown organization or user).
			return fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
	}
	return err
}
