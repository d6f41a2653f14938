package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func orgRelays(orgID string, n int) store.OrgRelays {
	return store.OrgRelays{
		OrganizationID: orgID,
		STUNServers:    []string{"stun.example.com:3478"},
		TURNServers:    []string{"turn:relay.example.com:3478?transport=udp", "turns:relay.example.com:5349?transport=tcp"},
		Secret:         []byte{byte(n), 0, 0xff, 'x'},
		UpdatedAt:      at(time.Duration(n) * time.Second),
	}
}

func testOrgRelays(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
	get := func(orgID string) store.OrgRelays {
		t.Helper()
		return read(t, s, func(ctx context.Context, tx store.Tx) (store.OrgRelays, error) { return tx.GetOrgRelays(ctx, orgID) })
	}
	wantErrTx(t, s, store.ErrNotFound, "GetOrgRelays before any", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetOrgRelays(ctx, "o1")
		return err
	})

	r1 := orgRelays("o1", 1)
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.SetOrgRelays(ctx, r1) })
	equal(t, "GetOrgRelays o1", get("o1"), r1)
	wantErrTx(t, s, store.ErrNotFound, "GetOrgRelays of another organization", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetOrgRelays(ctx, "o2")
		return err
	})

	// Setting again replaces every field; no STUN servers reads back as none.
	r2 := store.OrgRelays{OrganizationID: "o1", TURNServers: []string{"turn:[2001:db8::1]:3478?transport=udp"},
		Secret: []byte("second secret"), UpdatedAt: at(time.Hour + 7*time.Microsecond)}
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.SetOrgRelays(ctx, r2) })
	equal(t, "GetOrgRelays o1 after replace", get("o1"), r2)

	wantErrTx(t, s, store.ErrNotFound, "SetOrgRelays of a missing organization", func(ctx context.Context, tx store.Tx) error {
		return tx.SetOrgRelays(ctx, orgRelays("nope", 3))
	})

	// A failed transaction leaves the previous relays.
	_ = try(s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.SetOrgRelays(ctx, orgRelays("o1", 4)); err != nil {
			return err
		}
		return store.ErrConflict
	})
	equal(t, "GetOrgRelays o1 after rollback", get("o1"), r2)

	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteOrgRelays(ctx, "o1") })
	wantErrTx(t, s, store.ErrNotFound, "GetOrgRelays after delete", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetOrgRelays(ctx, "o1")
		return err
	})
	wantErrTx(t, s, store.ErrNotFound, "DeleteOrgRelays twice", func(ctx context.Context, tx store.Tx) error {
		return tx.DeleteOrgRelays(ctx, "o1")
	})
	// The organization itself is untouched.
	if o := read(t, s, func(ctx context.Context, tx store.Tx) (store.Organization, error) {
		return tx.GetOrganization(ctx, "o1")
	}); o.ID != "o1" {
		t.Errorf("organization after DeleteOrgRelays: %+v", o)
	}
}
