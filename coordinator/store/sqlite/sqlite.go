// Package sqlite is the coordinator's embedded storage engine: one SQLite file, opened through
// the pure-Go driver modernc.org/sqlite (no cgo), with schema migrations applied at Open.
//
// The schema lives in migrations/NNNN_*.sql, embedded and applied in order; schema_migrations
// records which ran. Times are stored as fixed-width UTC RFC 3339 text with nanoseconds, lists
// as JSON text. Uniqueness and ON DELETE CASCADE rules are the database's, so they hold under
// concurrency: UNIQUE violations come back as store.ErrConflict and references to missing
// organizations or users as store.ErrNotFound. Event revisions come from a counter row, so they
// are never reused, even after pruning.
//
// One writer connection runs Tx, one at a time; a pool of read-only connections runs View
// beside it (WAL mode lets readers see the last commit while the writer works). Watch and
// TryLock are in-process: a second Store on the same file neither hears the first's commits
// nor shares its locks. The file is created with mode 0600 and secure_delete is on; Compact
// rebuilds it (VACUUM) and truncates the WAL, for what an older version left in free pages.
//
// Migrations are numbered like those of the PostgreSQL engine (package store/postgres): one
// number is one schema change on both engines, so a change adds NNNN_name.sql to both
// migrations folders under the same number.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/coordinator/store/internal/watch"
)

// ErrClosed is returned (wrapped) by Tx after Close and by every Close after the first. It
// wraps net.ErrClosed, the one sentinel every Close of the project answers with.
var ErrClosed = fmt.Errorf("sqlite store: %w", net.ErrClosed)

// busyTimeout bounds how long a connection waits for a lock held by another handle on the same
// file (another process, or a second Store opened on the same path).
const busyTimeout = 10 * time.Second

// readers is how many read-only connections serve View at once.
const readers = 4

// Store is a store.Store backed by one SQLite database file: one writer connection for Tx and
// a pool of read-only connections for View, which WAL mode lets read a committed snapshot
// while the writer works.
type Store struct {
	db      *sql.DB       // the writer: one connection
	readDB  *sql.DB       // query_only connections for View
	writing chan struct{} // held from BEGIN to after the commit's changes are queued
	hub     *watch.Hub
	locks   locks

	mu     sync.Mutex
	closed bool
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it if missing, mode 0600) the SQLite database at path and brings its
// schema up to date. The -wal and -shm files SQLite makes beside it take the database file's
// mode, so they are 0600 too when Open created the file.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: open: empty path")
	}
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// Every connection gets the same settings: the pragmas are per connection, not per file.
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	// Deleted secrets (token hashes, sessions) are overwritten rather than left in free pages.
	q.Add("_pragma", "secure_delete(1)")
	// Take the write lock at BEGIN: a deferred transaction that reads and then writes can fail
	// with SQLITE_BUSY when another writer got in between, which busy_timeout cannot fix.
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", fileDSN(path, q))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// Every Tx may write and SQLite admits one writer at a time, so more connections would only
	// wait inside SQLite's sleeping busy handler.
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

	// Readers never write: query_only makes any write fail with SQLITE_READONLY, which View
	// reports as store.ErrReadOnly. journal_mode is the file's (set by the writer above).
	rq := url.Values{}
	rq.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	rq.Add("_pragma", "foreign_keys(1)")
	rq.Add("_pragma", "query_only(1)")
	readDB, err := sql.Open("sqlite", fileDSN(path, rq))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	readDB.SetMaxOpenConns(readers)
	readDB.SetMaxIdleConns(readers)
	if err := readDB.PingContext(ctx); err != nil {
		readDB.Close()
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	return &Store{db: db, readDB: readDB, writing: make(chan struct{}, 1), hub: watch.NewHub()}, nil
}

func fileDSN(path string, q url.Values) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// createPrivate creates the database file with mode 0600 unless it exists, so that SQLite,
// which gives -wal and -shm the database file's mode, never makes a file others can read
// whatever the umask. An existing database (made by an older version, under a loose umask)
// loses its group and other permission bits, with its -wal and -shm files: they hold tokens'
// hashes and, unsealed, relay secrets.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			if mode := fi.Mode().Perm(); mode&0o077 != 0 {
				if err := os.Chmod(p, mode&^0o077); err != nil {
					return fmt.Errorf("make %s private: %w", p, err)
				}
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Tx implements store.Store. Transactions are serialized: they run one at a time on the
// store's single connection, each waiting no longer than its context allows. So fn must not
// call Tx itself: the inner call would wait for the outer one to finish, which it never does,
// until ctx ends. fn may call View.
func (s *Store) Tx(ctx context.Context, fn func(store.Tx) error) (err error) {
	if s.isClosed() {
		return ErrClosed
	}
	// Held until the commit's changes are queued, so watchers hear commits in commit order.
	select {
	case s.writing <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("sqlite: begin: %w", ctx.Err())
	}
	defer func() { <-s.writing }()
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		if s.isClosed() { // Close won the race with the check above
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
	s.hub.Publish(t.changes.List()...)
	return nil
}

// View implements store.Store on the pool of read-only connections: it waits neither for Tx
// nor for other Views (up to the pool's size), and sees the database as of its first read.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if s.isClosed() {
		return ErrClosed
	}
	sqlTx, err := s.readDB.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		if s.isClosed() {
			return fmt.Errorf("sqlite: begin view: %w: %w", ErrClosed, err)
		}
		return fmt.Errorf("sqlite: begin view: %w", mapErr(err))
	}
	// Nothing to commit: ending a read transaction either way only releases its snapshot.
	defer sqlTx.Rollback() //nolint:errcheck
	return fn(&tx{tx: sqlTx})
}

// Close implements store.Store. It waits for running transactions to finish and for the
// watchers' goroutine to return (so Close must not be called from a Watch callback). Calls
// after the first return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	s.hub.Close()
	s.locks.close()
	rerr := s.readDB.Close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("sqlite: close readers: %w", rerr)
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
		if se.Code()&0xff == sqlite3.SQLITE_READONLY { // a write on a View connection
			return fmt.Errorf("%w: %w", store.ErrReadOnly, err)
		}
	}
	return err
}
