package coordinator

// The background sweeper and the liveness of ephemeral devices: it prunes events beyond the
// log's age and per-organization size bounds, retries a pending scrub of re-sealed secrets
// (seal.go), and deletes ephemeral devices whose stream has been gone longer than the grace
// period, unless a replica sharing the store has seen them lately (LastSeenAt, which their
// streams record).

import (
	"context"
	"errors"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// storedEphemeral lists the stored ephemeral devices, whose grace period starts when the
// coordinator does.
func (s *Server) storedEphemeral(ctx context.Context) ([]string, error) {
	return inTx(ctx, s.store, func(tx store.Tx) ([]string, error) {
		orgs, err := tx.ListOrganizations(ctx)
		if err != nil {
			return nil, err
		}
		var ids []string
		for _, o := range orgs {
			ds, err := tx.ListDevices(ctx, o.ID)
			if err != nil {
				return nil, err
			}
			for _, d := range ds {
				if d.Ephemeral {
					ids = append(ids, d.ID)
				}
			}
		}
		return ids, nil
	})
}

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

// sweep prunes old events, signals and expired sign-in state, and deletes ephemeral devices
// gone longer than the grace period.
func (s *Server) sweep(ctx context.Context) {
	now := s.now()
	s.prune(ctx, now)
	if s.scrubPending.Load() {
		s.scrub(ctx)
	}
	s.sweepEphemeral(ctx, now)
}

// prune deletes what has outlived its retention, and each organization's oldest events beyond
// Config.EventLogMaxBytes (after the age prune, so that the size bound counts only what the age
// bound keeps). Both move the store's PrunedRevision, from which a resuming stream knows it
// needs a sync. Replicas sharing a store take turns: only the holder of the "prune" lock
// prunes in a round, the others skip it.
func (s *Server) prune(ctx context.Context, now time.Time) {
	release, ok, err := s.store.TryLock(ctx, "prune")
	if err != nil || !ok {
		if err != nil && ctx.Err() == nil {
			s.log.Warn("pruning: cannot take the lock", "err", err)
		}
		return
	}
	defer release()
	for _, p := range []struct {
		what  string
		prune func(tx store.Tx) (int64, error)
	}{
		{"events", func(tx store.Tx) (int64, error) { return tx.PruneEvents(ctx, now.Add(-s.cfg.EventRetention)) }},
		{"events over the size bound", func(tx store.Tx) (int64, error) { return tx.PruneEventsOverSize(ctx, s.cfg.EventLogMaxBytes) }},
		{"signals", func(tx store.Tx) (int64, error) { return tx.PruneSignals(ctx, now.Add(-signalRetention)) }},
		{"expired sessions and logins", func(tx store.Tx) (int64, error) { return tx.PruneAuth(ctx, now) }},
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

// sweepEphemeral deletes the ephemeral devices this replica knows of that have had no stream
// for the grace period. Every replica sweeps its own: the LastSeenAt check keeps one replica
// from deleting a device that is connected to another.
func (s *Server) sweepEphemeral(ctx context.Context, now time.Time) {
	deadline := now.Add(-s.cfg.EphemeralGrace)
	for _, id := range s.hub.expiredEphemeral(deadline) {
		seen, err := inTx(ctx, s.store, func(tx store.Tx) (time.Time, error) {
			d, err := tx.GetDevice(ctx, id)
			if err != nil {
				return time.Time{}, err
			}
			if d.LastSeenAt.After(deadline) {
				// Seen recently, e.g. by another replica sharing the store: not yet.
				return d.LastSeenAt, errNotYet
			}
			return time.Time{}, s.deleteDeviceTx(ctx, tx, d, api.ReasonDeviceRemoved)
		})
		switch {
		case errors.Is(err, errNotYet):
			s.hub.sawEphemeral(id, seen)
		case err == nil:
			s.log.Info("ephemeral device deleted after disconnecting", "device_id", id)
			s.hub.forget(id)
		case errors.Is(err, store.ErrNotFound):
			s.hub.forget(id)
		case ctx.Err() == nil:
			s.log.Warn("deleting ephemeral device failed", "device_id", id, "err", err)
		}
	}
}

// errNotYet rolls back a sweep of a device seen within its grace period.
var errNotYet = errors.New("not yet")

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
