package storetest

// Expired ephemeral devices: the sweeper's query, by last-seen time and presence on any
// replica.

import (
	"context"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func testExpiredEphemeral(t *testing.T, s store.Store, _ ReopenFunc) {
	now := at(time.Hour)
	deadline := at(10 * time.Minute)
	ephemeral := func(id, orgID, owner string, n int, seen time.Duration) store.Device {
		d := device(id, orgID, owner, n)
		d.Ephemeral, d.LastSeenAt = true, at(seen)
		return d
	}
	gone := ephemeral("e-gone", "o1", "u1", 1, 2*time.Second)
	older := ephemeral("e-older", "o2", "u2", 2, time.Second) // another organization, seen earlier
	held := ephemeral("e-held", "o1", "u1", 3, time.Second)   // a replica holds its stream
	lapsed := ephemeral("e-lapsed", "o1", "u1", 4, 3*time.Second)
	recent := ephemeral("e-recent", "o1", "u1", 5, 30*time.Minute)
	lasting := device("d-lasting", "o1", "u1", 6) // not ephemeral, however long unseen
	createAll(t, s, store.Tx.CreateDevice, gone, older, held, lapsed, recent, lasting)
	createAll(t, s, store.Tx.PutPresence,
		store.Presence{DeviceID: held.ID, OrganizationID: "o1", ReplicaID: "r1", ExpiresAt: now.Add(-time.Minute)},
		store.Presence{DeviceID: held.ID, OrganizationID: "o1", ReplicaID: "r2", ExpiresAt: now.Add(time.Minute)},
		store.Presence{DeviceID: lapsed.ID, OrganizationID: "o1", ReplicaID: "r1", ExpiresAt: now.Add(-time.Second)},
		store.Presence{DeviceID: recent.ID, OrganizationID: "o1", ReplicaID: "r1", ExpiresAt: now.Add(time.Minute)})

	expired := func(seenBefore, now time.Time, limit int) []store.Device {
		t.Helper()
		return read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Device, error) {
			return tx.ExpiredEphemeralDevices(ctx, seenBefore, now, limit)
		})
	}
	// Oldest LastSeenAt first; a device held by one replica is not expired, whatever the
	// others' expired rows say; an expired row is no presence.
	got := expired(deadline, now, 0)
	equal(t, "expired ephemeral devices", got, []store.Device{older, gone, lapsed})
	equalIDs(t, "at most 2", ids(expired(deadline, now, 2), deviceID), []string{older.ID, gone.ID})
	// The deadline is strict: a device last seen exactly at it is not yet expired.
	equalIDs(t, "deadline at a LastSeenAt", ids(expired(gone.LastSeenAt, now, 0), deviceID), []string{older.ID})
	// Once the holding replica's row has expired too, the device is expired.
	equalIDs(t, "after the presence row expired", ids(expired(deadline, now.Add(2*time.Minute), 0), deviceID),
		[]string{held.ID, older.ID, gone.ID, lapsed.ID}) // the same LastSeenAt: by ID
	// A later deadline reaches the recently seen device, once nothing holds it.
	equalIDs(t, "later", ids(expired(at(2*time.Hour), at(2*time.Hour), 0), deviceID),
		[]string{held.ID, older.ID, gone.ID, lapsed.ID, recent.ID})

	// Deleted devices are gone from the list; renewed LastSeenAt takes a device off it.
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteDevice(ctx, older.ID) })
	gone.LastSeenAt = at(20 * time.Minute)
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UpdateDevice(ctx, gone) })
	equalIDs(t, "after a delete and a renewal", ids(expired(deadline, now, 0), deviceID), []string{lapsed.ID})
}

func deviceID(d store.Device) string { return d.ID }
