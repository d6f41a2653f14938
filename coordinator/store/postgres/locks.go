package postgres

// Cluster-wide named locks: PostgreSQL advisory locks, each held on a connection of its own
// until released, so that a replica that dies loses them with its session.

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Advisory lock keys of the store's own work. Names given to TryLock hash into the same
// 64-bit space; a collision would only make two names exclude each other.
var (
	migrateLockKey = lockKey("nexodus:migrate")
	retryLockKey   = lockKey("nexodus:retry")
)

// lockKey maps a name to an advisory lock key.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// locks are the advisory locks this Store holds, each with its connection.
type locks struct {
	mu   sync.Mutex
	held map[*pgx.Conn]heldLock // nil after close
}

func newLocks() *locks {
	return &locks{held: map[*pgx.Conn]heldLock{}}
}

// TryLock implements store.Store. The attempt runs on a pool connection; a lock taken keeps
// that connection out of the pool until release, which unlocks (so that the lock is free when
// release returns, not only once the server has seen the session end) and closes it.
func (s *Store) TryLock(ctx context.Context, name string) (release func(), ok bool, err error) {
	noop := func() {}
	if err := ctx.Err(); err != nil {
		return noop, false, fmt.Errorf("postgres: lock %q: %w", name, err)
	}
	if s.isClosed() {
		return noop, false, fmt.Errorf("postgres: lock %q: %w", name, ErrClosed)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return noop, false, s.closedOr(fmt.Errorf("postgres: lock %q: %w", name, err))
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey("lock:"+name)).Scan(&ok); err != nil {
		conn.Release()
		return noop, false, fmt.Errorf("postgres: lock %q: %w", name, err)
	}
	if !ok {
		conn.Release()
		return noop, false, nil
	}
	h := heldLock{conn: conn.Hijack(), key: lockKey("lock:" + name)}
	if !s.locks.add(h) { // Close ran meanwhile
		h.release()
		return noop, false, fmt.Errorf("postgres: lock %q: %w", name, ErrClosed)
	}
	var once sync.Once
	return func() { once.Do(func() { s.locks.remove(h) }) }, true, nil
}

// heldLock is an advisory lock and the session that holds it.
type heldLock struct {
	conn *pgx.Conn
	key  int64
}

func (h heldLock) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = h.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, h.key) // if this fails, the close frees it
	_ = h.conn.Close(ctx)
}

func (l *locks) add(h heldLock) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		return false
	}
	l.held[h.conn] = h
	return true
}

func (l *locks) remove(h heldLock) {
	l.mu.Lock()
	_, ok := l.held[h.conn]
	delete(l.held, h.conn)
	l.mu.Unlock()
	if ok {
		h.release()
	}
}

// close releases every lock still held.
func (l *locks) close() {
	l.mu.Lock()
	held := l.held
	l.held = nil
	l.mu.Unlock()
	for _, h := range held {
		h.release()
	}
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}
