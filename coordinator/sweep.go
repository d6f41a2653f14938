package coordinator

// The background sweeper and the liveness of ephemeral devices: it prunes events beyond the
// log's age and per-organization size bounds, expired signals, sign-in state and presence rows,
// retries a pending scrub of re-sealed secrets (seal.go), and deletes ephemeral devices whose
// stream has been gone longer than the grace period. What "gone" means lives in the store,
// shared by replicas: no unexpired presence row (presence.go) and a LastSeenAt, which their
// streams renew, older than the grace period.

import (
	"context"
	"errors"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// ephemeralBatch bounds the devices one sweep transaction deletes, so that a crowd of
// ephemeral devices gone at once (a CI fleet) does not make one huge transaction.
const ephemeralBatch = 100

// sweeper sweeps every Config.SweepInterval until ctx ends.
func (s *Server) sweeper(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.sweep(ctx)
	}
}

// sweep prunes old events, signals, presence rows and expired sign-in state, and deletes
// ephemeral devices gone longer than the grace period. Replicas sharing a store take turns:
// only the holder of the "prune" lock does either in a round, the others skip it. The scrub
// is this process's own business (its re-sealing at start) and runs regardless.
func (s *Server) sweep(ctx context.Context) {
	now := s.now()
	if release, ok, err := s.store.TryLock(ctx, "prune"); ok {
		s.prune(ctx, now)
		s.sweepEphemeral(ctx, now)
		release()
	} else if err != nil && ctx.Err() == nil {
		s.log.Warn("sweeping: cannot take the lock", "err", err)
	}
	if s.scrubPending.Load() {
		s.scrub(ctx)
	}
}

// prune deletes what has outlived its retention, and each organization's oldest events beyond
// Config.EventLogMaxBytes (after the age prune, so that the size bound counts only what the age
// bound keeps). Both move the store's PrunedRevision, from which a resuming stream knows it
// needs a sync. The caller holds the "prune" lock.
func (s *Server) prune(ctx context.Context, now time.Time) {
	for _, p := range []struct {
		what  string
		prune func(tx store.Tx) (int64, error)
	}{
		{"events", func(tx store.Tx) (int64, error) { return tx.PruneEvents(ctx, now.Add(-s.cfg.EventRetention)) }},
		{"events over the size bound", func(tx store.Tx) (int64, error) { return tx.PruneEventsOverSize(ctx, s.cfg.EventLogMaxBytes) }},
		{"signals", func(tx store.Tx) (int64, error) { return tx.PruneSignals(ctx, now.Add(-signalRetention)) }},
		{"expired sessions and logins", func(tx store.Tx) (int64, error) { return tx.PruneAuth(ctx, now) }},
		// Rows a replica left behind when it died; a presence TTL of slack for clocks that differ.
		{"presence rows", func(tx store.Tx) (int64, error) { return tx.PrunePresence(ctx, now.Add(-s.presenceTTL())) }},
	} {
		n, err := inTx(ctx, s.store, p.prune)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("pruning failed", "what", p.what, "err", err)
		case n > 0:
			s.log.Debug("pruned", "what", p.what, "count", n)
		}
	}
}

// sweepEphemeral deletes the ephemeral devices without a stream on any replica and not seen
// for the grace period, in batches. The caller holds the "prune" lock. A coordinator that has
// run for less than the grace period sweeps none: after an outage of the whole service the
// devices need the time to come back, so their grace period counts from the start too.
func (s *Server) sweepEphemeral(ctx context.Context, now time.Time) {
	deadline := now.Add(-s.cfg.EphemeralGrace)
	if deadline.Before(s.started) {
		return
	}
	for {
		// Listed and deleted in one transaction: a stream that connects meanwhile either
		// commits its presence first (and the device is not listed) or finds it deleted.
		gone, err := inTx(ctx, s.store, func(tx store.Tx) ([]string, error) {
			ds, err := tx.ExpiredEphemeralDevices(ctx, deadline, now, ephemeralBatch)
			if err != nil {
				return nil, err
			}
			ids := make([]string, 0, len(ds))
			for _, d := range ds {
				if err := s.deleteDeviceTx(ctx, tx, d, api.ReasonDeviceRemoved); err != nil {
					return nil, err
				}
				ids = append(ids, d.ID)
			}
			return ids, nil
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("deleting ephemeral devices failed", "err", err)
			}
			return
		}
		for _, id := range gone {
			s.log.Info("ephemeral device deleted after disconnecting", "device_id", id)
		}
		if len(gone) < ephemeralBatch {
			return
		}
	}
}

// touchDevice records that a device was seen now (its LastSeenAt), so that every replica
// sharing the store knows an ephemeral device is still connected somewhere.
func (s *Server) touchDevice(ctx context.Context, id string) {
	now := s.now()
	err := s.store.Tx(ctx, func(tx store.Tx) error {
		d, err := tx.GetDevice(ctx, id)
		if err != nil {
			return err
		}
		d.LastSeenAt = now
		return tx.UpdateDevice(ctx, d)
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Debug("recording device last seen failed", "device_id", id, "err", err)
	}
}
