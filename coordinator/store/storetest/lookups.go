package storetest

// The narrow reads: an organization's taken addresses, one device by hostname (ignoring ASCII
// case), an organization's revision.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func testDeviceAddresses(t *testing.T, s store.Store, _ ReopenFunc) {
	noV6 := device("d3", "o1", "u1", 3)
	noV6.TunnelIPv6 = ""
	createAll(t, s, store.Tx.CreateDevice, device("d1", "o1", "u1", 1), device("d2", "o2", "u2", 2), noV6)
	got := getOne(t, s, store.Tx.ListDeviceAddresses, "o1")
	assert.ElementsMatch(t, []store.DeviceAddresses{
		{DeviceID: "d1", TunnelIPv4: "100.64.0.1", TunnelIPv6: "fd00::1"},
		{DeviceID: "d3", TunnelIPv4: "100.64.0.3"},
	}, got, "ListDeviceAddresses o1: its devices only, an unset address empty")
	assert.Empty(t, getOne(t, s, store.Tx.ListDeviceAddresses, "nope"), "ListDeviceAddresses of an unknown organization")
}

func testDeviceByHostname(t *testing.T, s store.Store, _ ReopenFunc) {
	older := device("d1", "o1", "u1", 1)
	older.Hostname = "Laptop"
	newer := device("d2", "o1", "u1", 2)
	newer.Hostname = "LAPTOP" // a clash an older database may hold: the oldest answers
	other := device("d3", "o2", "u2", 3)
	other.Hostname = "laptop"
	desk := device("d4", "o1", "u1", 4)
	desk.Hostname = "desk-É"
	createAll(t, s, store.Tx.CreateDevice, newer, older, other, desk)
	get := func(org, name string) (store.Device, error) {
		return read2(t, s, func(ctx context.Context, tx store.Tx) (store.Device, error) {
			return tx.GetDeviceByHostname(ctx, org, name)
		})
	}
	for _, name := range []string{"laptop", "LAPTOP", "lApToP"} {
		d, err := get("o1", name)
		if assert.NoError(t, err, name) {
			equal(t, "GetDeviceByHostname o1 "+name, d, older)
		}
	}
	d, err := get("o2", "LAPTOP")
	if assert.NoError(t, err) {
		assert.Equal(t, "d3", d.ID, "GetDeviceByHostname looks in the given organization only")
	}
	_, err = get("o1", "laptop-1")
	wantErr(t, err, store.ErrNotFound, "GetDeviceByHostname of a free name")
	_, err = get("nope", "laptop")
	wantErr(t, err, store.ErrNotFound, "GetDeviceByHostname in an unknown organization")
	_, err = get("o1", "DESK-É")
	assert.NoError(t, err, "A-Z fold, the rest compares as is")
	_, err = get("o1", "desk-é")
	wantErr(t, err, store.ErrNotFound, "GetDeviceByHostname folds ASCII only")
}

// read2 is read that returns the error instead of failing the test.
func read2[T any](t *testing.T, s store.Store, fn func(ctx context.Context, tx store.Tx) (T, error)) (T, error) {
	t.Helper()
	var v T
	err := try(s, func(ctx context.Context, tx store.Tx) error {
		var err error
		v, err = fn(ctx, tx)
		return err
	})
	return v, err
}

func testOrganizationRevision(t *testing.T, s store.Store, _ ReopenFunc) {
	rev := func(org string) int64 { return getOne(t, s, store.Tx.OrganizationRevision, org) }
	assert.Zero(t, rev("o1"), "OrganizationRevision before any event")
	var r1 int64
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		r1, err = tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", Type: "a", CreatedAt: t0})
		return err
	})
	assert.Equal(t, r1, rev("o1"), "an untargeted event moves it")
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", TargetDeviceID: "d1", Type: "b", CreatedAt: t0}); err != nil {
			return err
		}
		if _, err := appendSignal(ctx, tx, "o1", "d1", t0); err != nil {
			return err
		}
		return appendEvent(ctx, tx, "o2")
	})
	assert.Equal(t, r1, rev("o1"), "targeted events, signals and other organizations' events do not")
	assert.Greater(t, rev("o2"), r1, "o2's own event")
	assert.Zero(t, rev("nope"), "an unknown organization")
	var in int64
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		r, err := tx.AppendEvent(ctx, store.Event{OrganizationID: "o1", Type: "c", CreatedAt: at(time.Hour)})
		if err != nil {
			return err
		}
		if in, err = tx.OrganizationRevision(ctx, "o1"); err != nil {
			return err
		}
		assert.Equal(t, r, in, "OrganizationRevision sees the transaction's own event")
		return nil
	})
	assert.Equal(t, in, rev("o1"), "after commit")
}
