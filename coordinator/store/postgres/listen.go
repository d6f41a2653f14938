package postgres

// The listener: one dedicated connection LISTENing for change notifications, re-established
// with backoff when lost.

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/coordinator/store/internal/watch"
)

// Reconnection backoff: from reconnectMin doubling to reconnectMax, each wait jittered.
const (
	reconnectMin     = 100 * time.Millisecond
	reconnectMax     = 10 * time.Second
	reconnectTimeout = 10 * time.Second // one connection attempt
)

type listener struct {
	cfg    *pgx.ConnConfig
	hub    *watch.Hub
	logger *slog.Logger
	pid    atomic.Uint32 // backend process of the current connection (tests end it)
	done   chan struct{}
}

// startListener connects and LISTENs (bounded by ctx), then serves until storeCtx ends.
func startListener(ctx, storeCtx context.Context, cfg *pgx.ConnConfig, hub *watch.Hub, logger *slog.Logger) (*listener, error) {
	l := &listener{cfg: cfg.Copy(), hub: hub, logger: logger, done: make(chan struct{})}
	conn, err := l.connect(ctx)
	if err != nil {
		return nil, err
	}
	go l.run(storeCtx, conn)
	return l, nil
}

// wait returns once the listener's goroutine has (after the store's context ended).
func (l *listener) wait() { <-l.done }

func (l *listener) connect(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, reconnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+channel); err != nil {
		_ = conn.Close(ctx)
		return nil, err
	}
	l.pid.Store(conn.PgConn().PID())
	return conn, nil
}

func (l *listener) run(ctx context.Context, conn *pgx.Conn) {
	defer close(l.done)
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err == nil {
			c, perr := parseChange(n.Payload)
			if perr != nil {
				l.logger.Debug("store: ignoring a notification", "channel", n.Channel, "err", perr)
				continue
			}
			l.hub.Publish(c)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		l.logger.Warn("store: lost the change notification connection; reconnecting", "err", err)
		closeConn(conn)
		if conn = l.reconnect(ctx); conn == nil {
			// conn is nil: the deferred close has nothing left to do.
			return
		}
		// Notifications sent while no connection listened are lost: everyone re-reads.
		l.hub.Publish(store.Change{})
	}
}

// reconnect tries until it succeeds (nil when ctx ends first).
func (l *listener) reconnect(ctx context.Context) *pgx.Conn {
	for attempt := 0; ; attempt++ {
		if err := sleep(ctx, reconnectDelay(attempt)); err != nil {
			return nil
		}
		conn, err := l.connect(ctx)
		if err == nil {
			l.logger.Info("store: change notification connection re-established", "attempts", attempt+1)
			return conn
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return nil
		}
		l.logger.Warn("store: reconnecting the change notification connection", "attempt", attempt+1, "err", err)
	}
}

// reconnectDelay is the wait before the given reconnection attempt: doubling from
// reconnectMin up to reconnectMax, less up to a quarter at random so replicas spread out.
func reconnectDelay(attempt int) time.Duration {
	d := reconnectMax
	if attempt < 10 {
		d = min(reconnectMin<<attempt, reconnectMax)
	}
	return d - jitter(d/4)
}
