package storetest

// Presence: which replica holds a device's stream, renewed, deleted and expired.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func online(t *testing.T, s store.Store, orgID string, now time.Time) []string {
	t.Helper()
	return read(t, s, func(ctx context.Context, tx store.Tx) ([]string, error) { return tx.OnlineDevices(ctx, orgID, now) })
}

func testPresence(t *testing.T, s store.Store, _ ReopenFunc) {
	now := at(time.Hour)
	put := func(device, org, replica string, expires time.Time) {
		t.Helper()
		do(t, s, func(ctx context.Context, tx store.Tx) error {
			return tx.PutPresence(ctx, store.Presence{DeviceID: device, OrganizationID: org, ReplicaID: replica, ExpiresAt: expires})
		})
	}
	del := func(device, replica string) {
		t.Helper()
		do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeletePresence(ctx, device, replica) })
	}
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, d := range []store.Device{device("d1", "o1", "u1", 1), device("d2", "o1", "u1", 2), device("d3", "o2", "u2", 3)} {
			if err := tx.CreateDevice(ctx, d); err != nil {
				return err
			}
		}
		return nil
	})
	assert.Empty(t, online(t, s, "o1", now), "online devices before any presence")

	put("d1", "o1", "r1", now.Add(time.Minute))
	put("d1", "o1", "r2", now.Add(2*time.Minute)) // the same device on two replicas is listed once
	put("d2", "o1", "r1", now.Add(-time.Second))  // expired
	put("d3", "o2", "r1", now.Add(time.Minute))
	assert.ElementsMatch(t, []string{"d1"}, online(t, s, "o1", now), "online devices of o1")
	assert.ElementsMatch(t, []string{"d3"}, online(t, s, "o2", now), "online devices of o2")
	assert.Empty(t, online(t, s, "nope", now), "online devices of an unknown organization")

	// Renewal: a second put of the same device and replica replaces the expiry.
	put("d2", "o1", "r1", now.Add(time.Minute))
	assert.ElementsMatch(t, []string{"d1", "d2"}, online(t, s, "o1", now), "online devices after renewal")
	// Expiry: later, only what was renewed past that time is online.
	assert.ElementsMatch(t, []string{"d1"}, online(t, s, "o1", now.Add(90*time.Second)), "online devices later")
	assert.Empty(t, online(t, s, "o1", now.Add(time.Hour)), "online devices much later")

	// Deleting one replica's row leaves the other's.
	del("d1", "r1")
	assert.ElementsMatch(t, []string{"d1", "d2"}, online(t, s, "o1", now), "online devices after one replica let go")
	del("d1", "r2")
	del("d1", "r2") // not an error when none
	assert.ElementsMatch(t, []string{"d2"}, online(t, s, "o1", now), "online devices after both replicas let go")

	// PrunePresence deletes what expired strictly before the cutoff.
	put("d1", "o1", "r1", now.Add(-time.Minute))
	assert.EqualValues(t, 1, getOne(t, s, store.Tx.PrunePresence, now.Add(time.Minute).UTC()), "PrunePresence deleted")
	assert.EqualValues(t, 0, getOne(t, s, store.Tx.PrunePresence, now.Add(time.Minute)), "PrunePresence again")
	assert.ElementsMatch(t, []string{"d2"}, online(t, s, "o1", now), "online devices after PrunePresence")

	// A deleted device is not online.
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteDevice(ctx, "d2") })
	assert.Empty(t, online(t, s, "o1", now), "online devices after the device was deleted")
}
