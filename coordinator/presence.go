package coordinator

// Presence shared by replicas: a device's stream held here is recorded in the store with an
// expiry this replica renews, so that every replica sharing the store can tell whether a
// device is online anywhere (the hostname rule, hostnames.go). The in-memory count (hub) stays
// the fast answer for this replica's own streams.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// presenceTTL is how long a presence row lasts unless renewed: a replica that dies without
// removing its rows leaves its devices "online" this long at most. Streams renew at every
// heartbeat, so it covers a few missed ones.
func (s *Server) presenceTTL() time.Duration { return 3 * s.cfg.Heartbeat }

// newReplicaID names this coordinator process in the presence rows it writes.
func newReplicaID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// putPresence records (or renews) that this replica holds a stream of the device.
func (s *Server) putPresence(ctx context.Context, st *stream) {
	p := store.Presence{DeviceID: st.deviceID, OrganizationID: st.orgID, ReplicaID: s.replica, ExpiresAt: s.now().Add(s.presenceTTL())}
	if err := s.store.Tx(ctx, func(tx store.Tx) error { return tx.PutPresence(ctx, p) }); err != nil && ctx.Err() == nil {
		s.log.Debug("recording presence failed", "device_id", st.deviceID, "err", err)
	}
}

// dropPresence removes this replica's presence row of the device.
func (s *Server) dropPresence(ctx context.Context, deviceID string) {
	if err := s.store.Tx(ctx, func(tx store.Tx) error { return tx.DeletePresence(ctx, deviceID, s.replica) }); err != nil {
		s.log.Debug("removing presence failed", "device_id", deviceID, "err", err)
	}
}

// onlineAnywhere reports, inside tx, whether the device has a stream on this replica or an
// unexpired presence row of any replica: "offline" is neither.
func (s *Server) onlineAnywhere(ctx context.Context, tx store.Tx, d store.Device) (bool, error) {
	if s.hub.isOnline(d.ID) {
		return true, nil
	}
	ids, err := tx.OnlineDevices(ctx, d.OrganizationID, s.now())
	return slices.Contains(ids, d.ID), err
}
