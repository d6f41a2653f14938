package storetest

// Devices: every field, the uniqueness rules, updates and moves.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func testDevices(t *testing.T, s store.Store, _ ReopenFunc) {
	full := store.Device{
		ID: "d1", OrganizationID: "o1", OwnerID: "u1", RegKeyID: "k1",
		PublicKey: "eZ2mQ5ZbJmwH0Xnq9U6Ux3V7cT2mW8p6qvV3hK1yB0s=", Hostname: "laptop.example",
		TunnelIPv4: "100.64.1.2", TunnelIPv6: "fd00:1::2",
		Endpoints: []store.Endpoint{
			{Source: "local", Address: "192.168.1.10:51820"},
			{Source: "stun", Address: "[2001:db8::1]:40000"},
			{Source: "stun", Address: "203.0.113.7:61000"},
		},
		SymmetricNAT:     true,
		ChildPrefixes:    []string{"10.1.0.0/16", "fd99::/48"},
		Ephemeral:        true,
		TokenID:          "devtok-1",
		TokenHash:        []byte{0, 0x10, 0x20, 0xff},
		PendingTokenID:   "devtok-2",
		PendingTokenHash: []byte{0xff, 0x20, 0x10, 0},
		LastSeenAt:       at(10*time.Minute + 1*time.Microsecond),
		CreatedAt:        at(time.Second),
		UpdatedAt:        at(2*time.Second + 999999*time.Microsecond),
	}
	// Zero values everywhere they are allowed: no endpoints, prefixes, reg key or hash.
	bare := store.Device{ID: "d0", OrganizationID: "o1", OwnerID: "u2", PublicKey: "pk-d0",
		TunnelIPv4: "100.64.1.3", TunnelIPv6: "fd00:1::3", CreatedAt: at(time.Second)}
	elsewhere := device("d2", "o2", "u1", 2)
	createAll(t, s, store.Tx.CreateDevice, []store.Device{full, bare, elsewhere}...)
	for _, d := range []store.Device{full, bare, elsewhere} {
		got := getOne(t, s, store.Tx.GetDevice, d.ID)
		equal(t, "GetDevice "+d.ID, got, d)
		got = getOne(t, s, store.Tx.GetDeviceByPublicKey, d.PublicKey)
		equal(t, "GetDeviceByPublicKey "+d.ID, got, d)
	}
	did := func(d store.Device) string { return d.ID }
	list := getOne(t, s, store.Tx.ListDevices, "o1")
	equalIDs(t, "ListDevices o1", ids(list, did), []string{"d0", "d1"})
	if len(list) == 2 {
		equal(t, "ListDevices record", list[1], full)
	}
	list = getOne(t, s, store.Tx.ListDevicesForOwner, "u1")
	equalIDs(t, "ListDevicesForOwner u1 (across organizations)", ids(list, did), []string{"d1", "d2"})
	list = getOne(t, s, store.Tx.ListDevicesForOwner, "u3")
	equalIDs(t, "ListDevicesForOwner u3", ids(list, did), nil)
	list = getOne(t, s, store.Tx.ListDevices, "nope")
	equalIDs(t, "ListDevices unknown organization", ids(list, did), nil)

	wantErrTx(t, s, store.ErrConflict, "CreateDevice with taken ID", func(ctx context.Context, tx store.Tx) error {
		d := device("d1", "o2", "u1", 50)
		return tx.CreateDevice(ctx, d)
	})
	for name, fn := range map[string]func(ctx context.Context, tx store.Tx) error{
		"GetDevice missing": func(ctx context.Context, tx store.Tx) error { _, err := tx.GetDevice(ctx, "nope"); return err },
		"GetDeviceByPublicKey missing": func(ctx context.Context, tx store.Tx) error {
			_, err := tx.GetDeviceByPublicKey(ctx, "nope")
			return err
		},
		"DeleteDevice missing": func(ctx context.Context, tx store.Tx) error { return tx.DeleteDevice(ctx, "nope") },
		"UpdateDevice missing": func(ctx context.Context, tx store.Tx) error {
			return tx.UpdateDevice(ctx, device("nope", "o1", "u1", 60))
		},
	} {
		wantErrTx(t, s, store.ErrNotFound, name, fn)
	}

	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteDevice(ctx, "d1") })
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetDevice, "d1", "GetDevice deleted")
	// Its public key and addresses are free again.
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		d := full
		d.ID = "d1b"
		return tx.CreateDevice(ctx, d)
	})
}

func testDeviceAddressUniqueness(t *testing.T, s store.Store, _ ReopenFunc) {
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.CreateDevice(ctx, device("d1", "o1", "u1", 1)) })

	cases := []struct {
		name   string
		mutate func(*store.Device)
		want   error
	}{
		{"same public key in another organization", func(d *store.Device) { d.OrganizationID = "o2"; d.PublicKey = "pk-d1" }, store.ErrConflict},
		{"same tunnel IPv4 in the organization", func(d *store.Device) { d.TunnelIPv4 = "100.64.0.1" }, store.ErrConflict},
		{"same tunnel IPv6 in the organization", func(d *store.Device) { d.TunnelIPv6 = "fd00::1" }, store.ErrConflict},
	}
	for _, c := range cases {
		d := device("dx", "o1", "u1", 9)
		c.mutate(&d)
		wantErrTx(t, s, c.want, c.name, func(ctx context.Context, tx store.Tx) error { return tx.CreateDevice(ctx, d) })
	}
	// The same addresses in another organization are fine: address spaces are per organization.
	same := device("d2", "o2", "u2", 1)
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.CreateDevice(ctx, same) })
	got := getOne(t, s, store.Tx.GetDevice, "d2")
	equal(t, "device with the same addresses in another organization", got, same)

	// An empty address is "none", not a value two devices can collide on.
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for i, id := range []string{"n1", "n2"} {
			d := device(id, "o1", "u1", 20+i)
			d.TunnelIPv6 = ""
			if err := tx.CreateDevice(ctx, d); err != nil {
				return err
			}
		}
		return nil
	})
	assert.Empty(t, getOne(t, s, store.Tx.GetDevice, "n2").TunnelIPv6, "empty TunnelIPv6 read back")
}

func testUpdateDevice(t *testing.T, s store.Store, _ ReopenFunc) {
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for i, id := range []string{"d1", "d2"} {
			if err := tx.CreateDevice(ctx, device(id, "o1", "u1", i+1)); err != nil {
				return err
			}
		}
		return tx.CreateDevice(ctx, device("d3", "o2", "u2", 3))
	})
	// Every field changes (except the ID), including a move to another organization.
	upd := store.Device{
		ID: "d1", OrganizationID: "o2", OwnerID: "u2", RegKeyID: "k9", PublicKey: "new-pk", Hostname: "renamed",
		TunnelIPv4: "100.64.2.9", TunnelIPv6: "fd00:2::9",
		Endpoints:     []store.Endpoint{{Source: "relay", Address: "198.51.100.1:3478"}},
		SymmetricNAT:  true,
		ChildPrefixes: []string{"172.16.0.0/12"},
		Ephemeral:     true, TokenID: "tok-new", TokenHash: []byte("new-hash"),
		PendingTokenID: "tok-pending", PendingTokenHash: []byte("pending-hash"),
		LastSeenAt: at(time.Hour), CreatedAt: at(-time.Hour), UpdatedAt: at(time.Hour + time.Microsecond),
	}
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UpdateDevice(ctx, upd) })
	got := getOne(t, s, store.Tx.GetDevice, "d1")
	equal(t, "GetDevice after UpdateDevice", got, upd)
	got = getOne(t, s, store.Tx.GetDeviceByPublicKey, "new-pk")
	equal(t, "GetDeviceByPublicKey after UpdateDevice", got, upd)
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetDeviceByPublicKey, "pk-d1", "GetDeviceByPublicKey old key")
	did := func(d store.Device) string { return d.ID }
	l1 := getOne(t, s, store.Tx.ListDevices, "o1")
	equalIDs(t, "ListDevices o1 after move", ids(l1, did), []string{"d2"})
	l2 := getOne(t, s, store.Tx.ListDevices, "o2")
	equalIDs(t, "ListDevices o2 after move", ids(l2, did), []string{"d1", "d3"})

	// Clearing the lists, the hash and the pending token sticks.
	cleared := upd
	cleared.Endpoints, cleared.ChildPrefixes, cleared.TokenHash, cleared.SymmetricNAT = nil, nil, nil, false
	cleared.PendingTokenID, cleared.PendingTokenHash = "", nil
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UpdateDevice(ctx, cleared) })
	got = getOne(t, s, store.Tx.GetDevice, "d1")
	equal(t, "GetDevice after clearing", got, cleared)

	// Updates obey the same uniqueness rules as creation.
	for name, mutate := range map[string]func(*store.Device){
		"UpdateDevice to a taken public key":  func(d *store.Device) { d.PublicKey = "pk-d3" },
		"UpdateDevice to a taken tunnel IPv4": func(d *store.Device) { d.TunnelIPv4 = "100.64.0.3" },
		"UpdateDevice to a taken tunnel IPv6": func(d *store.Device) { d.TunnelIPv6 = "fd00::3" },
	} {
		d := cleared
		mutate(&d)
		wantErrTx(t, s, store.ErrConflict, name, func(ctx context.Context, tx store.Tx) error { return tx.UpdateDevice(ctx, d) })
	}
	// Moving back to o1 onto d2's addresses conflicts; onto free ones succeeds.
	back := cleared
	back.OrganizationID, back.TunnelIPv4, back.TunnelIPv6 = "o1", "100.64.0.2", "fd00::99"
	wantErrTx(t, s, store.ErrConflict, "move onto a taken address", func(ctx context.Context, tx store.Tx) error {
		return tx.UpdateDevice(ctx, back)
	})
	back.TunnelIPv4 = "100.64.0.99"
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UpdateDevice(ctx, back) })
	wantErrTx(t, s, store.ErrNotFound, "UpdateDevice into a missing organization", func(ctx context.Context, tx store.Tx) error {
		d := back
		d.OrganizationID = "nope"
		return tx.UpdateDevice(ctx, d)
	})
}
