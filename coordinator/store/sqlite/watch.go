package sqlite

// Change notifications and named locks, both in-process: SQLite has no channel between
// processes, so a second Store on the same file neither hears this one's commits nor shares
// its locks.

import (
	"context"
	"fmt"
	"sync"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// Watch implements store.Store: fn hears of this Store's commits, in commit order, on the
// store's goroutine. After Close it returns a no-op cancel.
func (s *Store) Watch(fn func(store.Change)) (cancel func()) { return s.hub.Watch(fn) }

// TryLock implements store.Store with locks private to this Store.
func (s *Store) TryLock(ctx context.Context, name string) (release func(), ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return func() {}, false, fmt.Errorf("sqlite: lock %q: %w", name, err)
	}
	if s.isClosed() {
		return func() {}, false, fmt.Errorf("sqlite: lock %q: %w", name, ErrClosed)
	}
	release, ok = s.locks.try(name)
	return release, ok, nil
}

// locks is a set of held lock names.
type locks struct {
	mu   sync.Mutex
	held map[string]*sync.Once
}

// try takes name if it is free; release is idempotent (a no-op when not ok), and a release
// after the store's Close (which frees every lock) is harmless.
func (l *locks) try(name string) (release func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, taken := l.held[name]; taken {
		return func() {}, false
	}
	if l.held == nil {
		l.held = map[string]*sync.Once{}
	}
	once := new(sync.Once)
	l.held[name] = once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.held[name] == once {
				delete(l.held, name)
			}
		})
	}, true
}

func (l *locks) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held = nil
}
