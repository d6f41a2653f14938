package storetest

// References between records: no record points at a missing organization or user, and
// deleting an organization takes everything in it along.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// testMissingReferences checks that records cannot point at organizations or users that do
// not exist; engines report it as ErrNotFound.
func testMissingReferences(t *testing.T, s store.Store, _ ReopenFunc) {
	for name, fn := range map[string]func(ctx context.Context, tx store.Tx) error{
		"AddMember to missing organization": func(ctx context.Context, tx store.Tx) error {
			return tx.AddMember(ctx, store.Membership{OrganizationID: "nope", UserID: "u1", Role: "member", JoinedAt: t0})
		},
		"AddMember of missing user": func(ctx context.Context, tx store.Tx) error {
			return tx.AddMember(ctx, store.Membership{OrganizationID: "o1", UserID: "nope", Role: "member", JoinedAt: t0})
		},
		"CreateDevice in missing organization": func(ctx context.Context, tx store.Tx) error {
			return tx.CreateDevice(ctx, device("dx", "nope", "u1", 1))
		},
		"CreateInvitation to missing organization": func(ctx context.Context, tx store.Tx) error {
			return tx.CreateInvitation(ctx, store.Invitation{ID: "ix", OrganizationID: "nope", UserID: "u3", Role: "member",
				InviterID: "u1", Status: "pending", ExpiresAt: t0, CreatedAt: t0})
		},
		"CreateRegKey in missing organization": func(ctx context.Context, tx store.Tx) error {
			return tx.CreateRegKey(ctx, store.RegKey{ID: "kx", OrganizationID: "nope", OwnerID: "u1", CreatedAt: t0})
		},
		"CreateToken for missing user": func(ctx context.Context, tx store.Tx) error {
			return tx.CreateToken(ctx, store.Token{ID: "tx", UserID: "nope", CreatedAt: t0})
		},
	} {
		wantErrTx(t, s, store.ErrNotFound, name, fn)
	}
}

func testDeleteOrganizationCascades(t *testing.T, s store.Store, _ ReopenFunc) {
	var keep int64
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, o := range []string{"o1", "o2"} {
			if err := tx.CreateInvitation(ctx, store.Invitation{ID: "inv-" + o, OrganizationID: o, UserID: "u3", Role: "member",
				InviterID: "u1", Status: "pending", ExpiresAt: at(time.Hour), CreatedAt: t0}); err != nil {
				return err
			}
			if err := tx.CreateRegKey(ctx, store.RegKey{ID: "key-" + o, OrganizationID: o, OwnerID: "u1", CreatedAt: t0}); err != nil {
				return err
			}
			if err := tx.SetOrgRelays(ctx, orgRelays(o, 1)); err != nil {
				return err
			}
			// Same addresses in both organizations, distinct keys.
			d := device("dev-"+o, o, "u1", 1)
			if err := tx.CreateDevice(ctx, d); err != nil {
				return err
			}
			rev, err := tx.AppendEvent(ctx, store.Event{OrganizationID: o, Type: "device.added", Data: []byte(`{}`), CreatedAt: t0})
			if err != nil {
				return err
			}
			if o == "o2" {
				keep = rev
			}
		}
		return nil
	})
	latest := readTx(t, s, store.Tx.LatestRevision)
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteOrganization(ctx, "o1") })

	for name, fn := range map[string]func(ctx context.Context, tx store.Tx) error{
		"organization": func(ctx context.Context, tx store.Tx) error { _, err := tx.GetOrganization(ctx, "o1"); return err },
		"membership":   func(ctx context.Context, tx store.Tx) error { _, err := tx.GetMember(ctx, "o1", "u1"); return err },
		"invitation":   func(ctx context.Context, tx store.Tx) error { _, err := tx.GetInvitation(ctx, "inv-o1"); return err },
		"reg key":      func(ctx context.Context, tx store.Tx) error { _, err := tx.GetRegKey(ctx, "key-o1"); return err },
		"relays":       func(ctx context.Context, tx store.Tx) error { _, err := tx.GetOrgRelays(ctx, "o1"); return err },
		"device":       func(ctx context.Context, tx store.Tx) error { _, err := tx.GetDevice(ctx, "dev-o1"); return err },
		"device by key": func(ctx context.Context, tx store.Tx) error {
			_, err := tx.GetDeviceByPublicKey(ctx, "pk-dev-o1")
			return err
		},
	} {
		wantErrTx(t, s, store.ErrNotFound, "after DeleteOrganization: "+name, fn)
	}
	assert.Empty(t, getOne(t, s, store.Tx.ListMembers, "o1"), "members of the deleted organization")
	assert.Empty(t, getOne(t, s, store.Tx.ListRegKeys, "o1"), "keys of the deleted organization")
	assert.Empty(t, getOne(t, s, store.Tx.ListOrganizationsForUser, "u1"), "organizations of u1 after the delete")
	assert.Empty(t, listEvents(t, s, "o1", "", 0, 100), "events of the deleted organization")
	equalIDs(t, "invitations of u3 after the delete", ids(getOne(t, s, store.Tx.ListInvitationsForUser, "u3"),
		func(i store.Invitation) string { return i.ID }), []string{"inv-o2"})
	equalIDs(t, "devices of u1 after the delete", ids(getOne(t, s, store.Tx.ListDevicesForOwner, "u1"),
		func(d store.Device) string { return d.ID }), []string{"dev-o2"})
	equalRevs(t, "events of the other organization", listEvents(t, s, "o2", "", 0, 100), []int64{keep})
	equal(t, "relays of the other organization", getOne(t, s, store.Tx.GetOrgRelays, "o2"), orgRelays("o2", 1))
	getOne(t, s, store.Tx.GetUser, "u1") // users are not the organization's to delete
	assert.Equal(t, latest, readTx(t, s, store.Tx.LatestRevision), "LatestRevision after DeleteOrganization")
	// The deleted organization's name, public keys and addresses are free again.
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateOrganization(ctx, org("o1", "u1", 1)); err != nil {
			return err
		}
		return tx.CreateDevice(ctx, device("dev-o1", "o1", "u1", 1))
	})
}
