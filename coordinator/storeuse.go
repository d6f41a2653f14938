package coordinator

// The Server's handle on its store: every transaction timed for the metrics, and a database
// outage (store.ErrUnavailable: down, restarting, refusing connections) turned into the domain's
// ErrUnavailable, so that requests answer 503 and /readyz says why while the database is away.
// The engines reconnect by themselves, so nothing here has to notice its return.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// serverStore wraps the configured store.
type serverStore struct {
	store.Store
	m *metrics
}

func (ss serverStore) Tx(ctx context.Context, fn func(store.Tx) error) error {
	return ss.run("tx", func() error { return ss.Store.Tx(ctx, fn) })
}

func (ss serverStore) View(ctx context.Context, fn func(store.Tx) error) error {
	return ss.run("view", func() error { return ss.Store.View(ctx, fn) })
}

func (ss serverStore) run(kind string, txn func() error) error {
	start := time.Now()
	err := txn()
	result := "ok"
	if err != nil {
		result = "error"
	}
	ss.m.storeTxTime.WithLabelValues(kind, result).Observe(time.Since(start).Seconds())
	if errors.Is(err, store.ErrUnavailable) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// readyReason tells a /readyz caller why the store check failed, without the error's context
// (which may name the database's user and host): the driver's last words.
func readyReason(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "the database did not answer in time"
	case errors.Is(err, store.ErrUnavailable):
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		return "the database is unavailable: " + msg
	default:
		return "the store is failing (the coordinator's log says how)"
	}
}
