// Package postgres is the coordinator's storage engine for several replicas: one PostgreSQL
// database shared by every coordinator process, through github.com/jackc/pgx/v5 and its pool.
//
// Read-write transactions run SERIALIZABLE and are retried (a bounded number of times, with
// backoff) when PostgreSQL reports a serialization failure or a deadlock, so fn of Store.Tx may
// run more than once. Read-only transactions (Store.View) run REPEATABLE READ READ ONLY and
// never wait for writers. Each write runs in a savepoint, so that a failed call (a uniqueness
// violation, say) leaves the transaction usable, as the store contract requires.
//
// Event revisions come from one counter row updated inside the appending transaction: its row
// lock makes appenders take numbers in commit order on every replica, and a rollback gives the
// number back, so revisions are gap-free and a reader resuming after the last revision it saw
// misses none. The appending transaction also sends a NOTIFY with the ids of what it appended
// (never the data), which PostgreSQL delivers on commit only; every Store LISTENs on one
// dedicated connection and calls its watchers (Store.Watch) in commit order. When that
// connection is lost the Store reconnects with backoff and then tells its watchers
// store.Change{} ("re-read everything"), since notifications may have been missed.
//
// TryLock takes a PostgreSQL advisory lock on a connection it holds until release: a replica
// that dies loses its locks with its session.
//
// The schema lives in migrations/NNNN_*.sql, applied in order at Open under an advisory lock,
// so replicas starting together do not race. Migrations are numbered like those of the SQLite
// engine (package store/sqlite): one number is one schema change on both engines, so a change
// adds NNNN_name.sql to both migrations folders under the same number.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/coordinator/store/internal/watch"
)

// ErrClosed is returned (wrapped) by Tx, View and TryLock after Close and by every Close after
// the first. It wraps net.ErrClosed, the one sentinel every Close of the project answers with.
var ErrClosed = fmt.Errorf("postgres store: %w", net.ErrClosed)

// channel is the NOTIFY channel of change notifications.
const channel = "nexodus_changes"

// maxAttempts bounds how often Tx runs fn when PostgreSQL keeps reporting serialization
// failures; past it the last failure is returned.
const maxAttempts = 30

// defaultConnectTimeout bounds each connection attempt unless the URL sets connect_timeout.
const defaultConnectTimeout = 5 * time.Second

// Option configures Open.
type Option func(*config)

type config struct {
	logger   *slog.Logger
	maxConns int32
}

// WithLogger sets where the store logs what it recovers from (a lost notification
// connection). The default discards.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithMaxConns bounds the pool's connections (default: pgxpool's, or pool_max_conns in the
// URL). Connections held by TryLock and the notification listener come on top.
func WithMaxConns(n int) Option { return func(c *config) { c.maxConns = int32(n) } }

// Store is a store.Store backed by a PostgreSQL database.
type Store struct {
	pool   *pgxpool.Pool
	hub    *watch.Hub
	logger *slog.Logger
	locks  *locks

	ctx      context.Context // ends at Close: bounds the listener
	stop     context.CancelFunc
	listener *listener

	mu     sync.Mutex
	closed bool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// or postgresql:// URL, or a key=value
// connection string), brings its schema up to date and starts listening for changes.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	cfg := config{logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may quote the URL, password included: keep only that it failed to parse.
		return nil, errors.New("postgres: open: the database URL does not parse")
	}
	if cfg.maxConns > 0 {
		pcfg.MaxConns = cfg.maxConns
	}
	if pcfg.ConnConfig.ConnectTimeout == 0 {
		// A server that does not answer (a partition, not a refusal) must fail requests, not
		// hang them: the URL's connect_timeout, when given, says how long.
		pcfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	where := pcfg.ConnConfig.Database + " at " + pcfg.ConnConfig.Host
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &Store{pool: pool, hub: watch.NewHub(), logger: cfg.logger, locks: newLocks(), ctx: sctx, stop: stop}
	s.listener, err = startListener(ctx, sctx, pcfg.ConnConfig, s.hub, cfg.logger)
	if err != nil {
		stop()
		s.hub.Close()
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: listen: %w", where, err)
	}
	return s, nil
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Tx implements store.Store. fn runs in a SERIALIZABLE transaction and runs again, up to
// maxAttempts times in all, when PostgreSQL cannot serialize it with concurrent ones: fn must
// have no effect outside the transaction but setting its results.
func (s *Store) Tx(ctx context.Context, fn func(store.Tx) error) error {
	var err error
	lastDuplicate := ""
	for attempt := range maxAttempts {
		if s.isClosed() {
			return ErrClosed
		}
		if attempt > 0 {
			if werr := sleep(ctx, backoff(attempt)); werr != nil {
				return fmt.Errorf("postgres: retry after %w: %w", err, werr)
			}
		}
		var retry bool
		var duplicate string
		retry, duplicate, err = s.attempt(ctx, fn, attempt > 0)
		if duplicate != "" {
			// The same duplicate twice in a row is real: see attempt.
			retry = duplicate != lastDuplicate
			lastDuplicate = duplicate
		}
		if !retry {
			return err
		}
	}
	return fmt.Errorf("postgres: gave up after %d attempts: %w", maxAttempts, err)
}

// attempt runs fn once. retry reports a serialization failure or deadlock, whatever fn made of
// it. duplicate is set when fn failed with a uniqueness violation, naming the constraint and
// key: under SERIALIZABLE that may be a concurrent transaction's doing that PostgreSQL does not
// report as a serialization failure (two transactions read which addresses are free, then
// both insert the first one), and the PostgreSQL manual advises a retry. The violating row was
// committed before the violation was reported, so a rerun sees it: if fn then violates the
// same key again, the duplicate is real.
//
// A retried attempt (serialize) first takes the retriers' lock, a session advisory lock held
// across BEGIN..COMMIT: its snapshot then starts after the previous holder committed, so
// transactions that collided once queue instead of colliding again.
func (s *Store) attempt(ctx context.Context, fn func(store.Tx) error, serialize bool) (retry bool, duplicate string, err error) {
	retry, err = s.attemptOnce(ctx, fn, serialize)
	if !retry {
		duplicate = duplicateKey(err)
	}
	return retry, duplicate, err
}

func (s *Store) attemptOnce(ctx context.Context, fn func(store.Tx) error, serialize bool) (retry bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, s.closedOr(fmt.Errorf("postgres: begin: %w", mapErr(err)))
	}
	defer conn.Release()
	if serialize {
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, retryLockKey); err != nil {
			return retryable(err), fmt.Errorf("postgres: begin: take the retriers' lock: %w", err)
		}
		defer func() {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, retryLockKey); uerr != nil {
				// The session would keep the lock: end it, and the lock goes with it.
				_ = conn.Conn().Close(uctx)
			}
		}()
	}
	ptx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return false, fmt.Errorf("postgres: begin: %w", mapErr(err))
	}
	t := &tx{tx: ptx}
	committed := false
	defer func() {
		// Also runs when fn panics, so the connection never goes back inside a transaction.
		if !committed {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = ptx.Rollback(rctx)
		}
	}()
	ferr := fn(t)
	if t.retry != nil {
		return true, t.retry
	}
	if ferr != nil {
		return retryable(ferr), ferr
	}
	if err := t.notify(ctx); err != nil {
		return retryable(err), err
	}
	if err := ptx.Commit(ctx); err != nil {
		return retryable(err), fmt.Errorf("postgres: commit: %w", mapErr(err))
	}
	committed = true
	return false, nil
}

// View implements store.Store: a REPEATABLE READ READ ONLY transaction, which sees one snapshot
// and takes no lock a writer waits for.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if s.isClosed() {
		return ErrClosed
	}
	ptx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return s.closedOr(fmt.Errorf("postgres: begin view: %w", mapErr(err)))
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = ptx.Rollback(rctx) // nothing to commit
	}()
	return fn(&tx{tx: ptx})
}

// Watch implements store.Store: fn hears of every replica's commits, in commit order, and gets
// store.Change{} after the notification connection was re-established.
func (s *Store) Watch(fn func(store.Change)) (cancel func()) { return s.hub.Watch(fn) }

// Close implements store.Store: it stops the listener, releases held locks, waits for running
// transactions and closes the pool. It must not be called from a Watch callback. Calls after
// the first return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.listener.wait()
	s.locks.close()
	s.hub.Close()
	s.pool.Close()
	return nil
}

// closedOr is ErrClosed (wrapping err) when Close won a race with the caller's check.
func (s *Store) closedOr(err error) error {
	if s.isClosed() {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// backoff is the wait before the given retry: exponential from 1ms, capped at 100ms, with full
// jitter so that colliding transactions spread out.
func backoff(attempt int) time.Duration {
	d := time.Millisecond << min(attempt, 7)
	d = min(d, 100*time.Millisecond)
	return d/2 + jitter(d/2)
}

// jitter is a random duration in [0, d].
func jitter(d time.Duration) time.Duration { return rand.N(d + 1) }

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
