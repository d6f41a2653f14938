package storetest

// Organizations and what belongs to them: memberships, invitations, registration keys and
// the organization's own relays.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func testOrganizations(t *testing.T, s store.Store, _ ReopenFunc) {
	o3 := store.Organization{
		ID: "o3", Name: "personal-u3", Description: "", OwnerID: "u3", Personal: true,
		IPv4CIDR: "100.65.0.0/16", IPv6CIDR: "fd12:3456:789a:1::/64", CreatedAt: at(-time.Hour),
	}
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.CreateOrganization(ctx, o3) })
	for _, o := range []store.Organization{org("o1", "u1", 1), org("o2", "u2", 2), o3} {
		got := getOne(t, s, store.Tx.GetOrganization, o.ID)
		equal(t, "GetOrganization "+o.ID, got, o)
	}
	all := readTx(t, s, store.Tx.ListOrganizations)
	oid := func(o store.Organization) string { return o.ID }
	equalIDs(t, "ListOrganizations", ids(all, oid), []string{"o3", "o1", "o2"})

	for user, want := range map[string][]string{"u1": {"o1"}, "u2": {"o1", "o2"}, "u3": nil, "nobody": nil} {
		got := getOne(t, s, store.Tx.ListOrganizationsForUser, user)
		equalIDs(t, "ListOrganizationsForUser "+user, ids(got, oid), want)
	}
	got := getOne(t, s, store.Tx.ListOrganizationsForUser, "u2")
	if len(got) == 2 {
		equal(t, "ListOrganizationsForUser record", got[1], org("o2", "u2", 2))
	}

	// Only personal organizations' names are unique: another organization may share a name
	// with an organization of either kind.
	wantErrTx(t, s, store.ErrConflict, "CreateOrganization personal with a taken personal name", func(ctx context.Context, tx store.Tx) error {
		o := org("o4", "u1", 4)
		o.Name, o.Personal = "personal-u3", true
		return tx.CreateOrganization(ctx, o)
	})
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for i, id := range []string{"o6", "o7"} {
			o := org(id, "u1", 6+i)
			o.Name = "shared"
			if err := tx.CreateOrganization(ctx, o); err != nil {
				return fmt.Errorf("second non-personal organization named shared: %w", err)
			}
		}
		o := org("o8", "u3", 8)
		o.Name = "personal-u3"
		if err := tx.CreateOrganization(ctx, o); err != nil {
			return fmt.Errorf("non-personal organization with a personal one's name: %w", err)
		}
		o = org("o9", "u3", 9)
		o.Name, o.Personal = "shared", true
		if err := tx.CreateOrganization(ctx, o); err != nil {
			return fmt.Errorf("personal organization with non-personal ones' name: %w", err)
		}
		for _, id := range []string{"o6", "o7", "o8", "o9"} {
			if err := tx.DeleteOrganization(ctx, id); err != nil {
				return err
			}
		}
		return nil
	})
	wantErrTx(t, s, store.ErrConflict, "CreateOrganization with taken ID", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateOrganization(ctx, org("o1", "u1", 5))
	})
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetOrganization, "nope", "GetOrganization missing")
	wantErrTx(t, s, store.ErrNotFound, "DeleteOrganization missing", func(ctx context.Context, tx store.Tx) error {
		return tx.DeleteOrganization(ctx, "nope")
	})
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteOrganization(ctx, "o3") })
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetOrganization, "o3", "GetOrganization deleted")
	// The personal name is free again.
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		o := org("o5", "u3", 5)
		o.Name, o.Personal = "personal-u3", true
		return tx.CreateOrganization(ctx, o)
	})
}

func testMembers(t *testing.T, s store.Store, _ ReopenFunc) {
	got := read(t, s, func(ctx context.Context, tx store.Tx) (store.Membership, error) { return tx.GetMember(ctx, "o1", "u2") })
	equal(t, "GetMember", got, store.Membership{OrganizationID: "o1", UserID: "u2", Username: "name-u2", Role: "member", JoinedAt: at(2 * time.Second)})

	m3 := store.Membership{OrganizationID: "o1", UserID: "u3", Username: "ignored-on-write", Role: "member", JoinedAt: at(time.Second)}
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.AddMember(ctx, m3) })
	list := getOne(t, s, store.Tx.ListMembers, "o1")
	// By join time, then user ID.
	equalIDs(t, "ListMembers", ids(list, func(m store.Membership) string { return m.UserID }), []string{"u1", "u3", "u2"})
	if len(list) == 3 {
		m3.Username = "name-u3" // filled in from the user by reads
		equal(t, "ListMembers record", list[1], m3)
	}

	wantErrTx(t, s, store.ErrConflict, "AddMember twice", func(ctx context.Context, tx store.Tx) error {
		return tx.AddMember(ctx, store.Membership{OrganizationID: "o1", UserID: "u2", Role: "owner", JoinedAt: t0})
	})
	wantErrTx(t, s, store.ErrNotFound, "GetMember of non-member", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetMember(ctx, "o2", "u1")
		return err
	})
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.SetMemberRole(ctx, "o1", "u3", "admin") })
	got = read(t, s, func(ctx context.Context, tx store.Tx) (store.Membership, error) { return tx.GetMember(ctx, "o1", "u3") })
	m3.Role, m3.Username = "admin", "name-u3"
	equal(t, "GetMember after SetMemberRole", got, m3)
	for name, ids := range map[string][2]string{
		"SetMemberRole of a non-member":           {"o2", "u1"},
		"SetMemberRole in a missing organization": {"nope", "u1"},
	} {
		wantErrTx(t, s, store.ErrNotFound, name, func(ctx context.Context, tx store.Tx) error {
			return tx.SetMemberRole(ctx, ids[0], ids[1], "admin")
		})
	}
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.SetOrganizationOwner(ctx, "o1", "u3") })
	org := getOne(t, s, store.Tx.GetOrganization, "o1")
	assert.Equal(t, "u3", org.OwnerID, "owner after SetOrganizationOwner")
	for name, ids := range map[string][2]string{
		"SetOrganizationOwner of a missing organization": {"nope", "u1"},
		"SetOrganizationOwner to a missing user":         {"o1", "nobody"},
	} {
		wantErrTx(t, s, store.ErrNotFound, name, func(ctx context.Context, tx store.Tx) error {
			return tx.SetOrganizationOwner(ctx, ids[0], ids[1])
		})
	}
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.SetOrganizationOwner(ctx, "o1", "u1") })
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.RemoveMember(ctx, "o1", "u2") })
	wantErrTx(t, s, store.ErrNotFound, "GetMember removed", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetMember(ctx, "o1", "u2")
		return err
	})
	wantErrTx(t, s, store.ErrNotFound, "RemoveMember again", func(ctx context.Context, tx store.Tx) error {
		return tx.RemoveMember(ctx, "o1", "u2")
	})
	// u2 is still in o2; removal touched only the one membership.
	orgs := getOne(t, s, store.Tx.ListOrganizationsForUser, "u2")
	equalIDs(t, "ListOrganizationsForUser after removal", ids(orgs, func(o store.Organization) string { return o.ID }), []string{"o2"})
	empty := getOne(t, s, store.Tx.ListMembers, "nope")
	assert.Empty(t, empty, "ListMembers of an unknown organization")
}

func testInvitations(t *testing.T, s store.Store, _ ReopenFunc) {
	invs := []store.Invitation{
		{ID: "i2", OrganizationID: "o1", UserID: "u3", Role: "member", InviterID: "u1", Status: "pending",
			ExpiresAt: at(7 * 24 * time.Hour), CreatedAt: at(time.Second)},
		{ID: "i1", OrganizationID: "o1", UserID: "u3", Role: "owner", InviterID: "u1", Status: "pending",
			ExpiresAt: at(time.Hour + time.Microsecond), CreatedAt: at(time.Second)},
		{ID: "i3", OrganizationID: "o2", UserID: "u3", Role: "member", InviterID: "u2", Status: "pending",
			ExpiresAt: at(time.Hour), CreatedAt: at(0)},
		{ID: "i4", OrganizationID: "o2", UserID: "u1", Role: "member", InviterID: "u2", Status: "pending",
			ExpiresAt: at(time.Hour), CreatedAt: at(3 * time.Second)},
	}
	createAll(t, s, store.Tx.CreateInvitation, invs...)
	for _, i := range invs {
		got := getOne(t, s, store.Tx.GetInvitation, i.ID)
		equal(t, "GetInvitation "+i.ID, got, i)
	}
	iid := func(i store.Invitation) string { return i.ID }
	for u, want := range map[string][]string{"u3": {"i3", "i1", "i2"}, "u1": {"i4"}, "u2": nil} {
		got := getOne(t, s, store.Tx.ListInvitationsForUser, u)
		equalIDs(t, "ListInvitationsForUser "+u, ids(got, iid), want)
	}
	for o, want := range map[string][]string{"o1": {"i1", "i2"}, "o2": {"i3", "i4"}, "nope": nil} {
		got := getOne(t, s, store.Tx.ListInvitationsForOrganization, o)
		equalIDs(t, "ListInvitationsForOrganization "+o, ids(got, iid), want)
	}

	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.SetInvitationStatus(ctx, "i1", "accepted") })
	got := getOne(t, s, store.Tx.GetInvitation, "i1")
	want := invs[1]
	want.Status = "accepted"
	equal(t, "GetInvitation after SetInvitationStatus", got, want)
	other := getOne(t, s, store.Tx.GetInvitation, "i2")
	equal(t, "other invitation untouched", other, invs[0])

	wantErrTx(t, s, store.ErrConflict, "CreateInvitation with taken ID", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateInvitation(ctx, invs[0])
	})
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetInvitation, "nope", "GetInvitation missing")
	wantErrTx(t, s, store.ErrNotFound, "SetInvitationStatus missing", func(ctx context.Context, tx store.Tx) error {
		return tx.SetInvitationStatus(ctx, "nope", "revoked")
	})
}

func testRegKeys(t *testing.T, s store.Store, _ ReopenFunc) {
	keys := []store.RegKey{
		{ID: "k1", OrganizationID: "o1", OwnerID: "u1", Description: "ci runners", SecretHash: []byte{9, 8, 7, 0},
			SingleUse: true, Ephemeral: true, ExpiresAt: ptr(at(24*time.Hour + 5*time.Microsecond)), CreatedAt: at(2 * time.Second)},
		{ID: "k2", OrganizationID: "o1", OwnerID: "u2", SecretHash: []byte("h2"), CreatedAt: at(time.Second)},
		{ID: "k3", OrganizationID: "o2", OwnerID: "u2", SecretHash: []byte("h3"), Used: true, CreatedAt: at(0)},
	}
	createAll(t, s, store.Tx.CreateRegKey, keys...)
	for _, k := range keys {
		got := getOne(t, s, store.Tx.GetRegKey, k.ID)
		equal(t, "GetRegKey "+k.ID, got, k)
		assert.Equal(t, k.ExpiresAt == nil, got.ExpiresAt == nil, "GetRegKey %s: no ExpiresAt", k.ID)
	}
	kid := func(k store.RegKey) string { return k.ID }
	list := getOne(t, s, store.Tx.ListRegKeys, "o1")
	equalIDs(t, "ListRegKeys o1", ids(list, kid), []string{"k2", "k1"})

	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.MarkRegKeyUsed(ctx, "k1") })
	got := getOne(t, s, store.Tx.GetRegKey, "k1")
	want := keys[0]
	want.Used = true
	equal(t, "GetRegKey after MarkRegKeyUsed", got, want)
	// Marking twice is harmless: the key exists.
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.MarkRegKeyUsed(ctx, "k1") })

	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteRegKey(ctx, "k2") })
	list = getOne(t, s, store.Tx.ListRegKeys, "o1")
	equalIDs(t, "ListRegKeys after delete", ids(list, kid), []string{"k1"})

	wantErrTx(t, s, store.ErrConflict, "CreateRegKey with taken ID", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateRegKey(ctx, keys[0])
	})
	for name, fn := range map[string]func(ctx context.Context, tx store.Tx) error{
		"GetRegKey missing":      func(ctx context.Context, tx store.Tx) error { _, err := tx.GetRegKey(ctx, "k2"); return err },
		"MarkRegKeyUsed missing": func(ctx context.Context, tx store.Tx) error { return tx.MarkRegKeyUsed(ctx, "k2") },
		"DeleteRegKey missing":   func(ctx context.Context, tx store.Tx) error { return tx.DeleteRegKey(ctx, "k2") },
	} {
		wantErrTx(t, s, store.ErrNotFound, name, fn)
	}
}

func testOrgRelays(t *testing.T, s store.Store, _ ReopenFunc) {
	get := func(orgID string) store.OrgRelays {
		t.Helper()
		return getOne(t, s, store.Tx.GetOrgRelays, orgID)
	}
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetOrgRelays, "o1", "GetOrgRelays before any")

	r1 := orgRelays("o1", 1)
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.SetOrgRelays(ctx, r1) })
	equal(t, "GetOrgRelays o1", get("o1"), r1)
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetOrgRelays, "o2", "GetOrgRelays of another organization")

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
	wantGetErr(t, s, store.ErrNotFound, store.Tx.GetOrgRelays, "o1", "GetOrgRelays after delete")
	wantErrTx(t, s, store.ErrNotFound, "DeleteOrgRelays twice", func(ctx context.Context, tx store.Tx) error {
		return tx.DeleteOrgRelays(ctx, "o1")
	})
	// The organization itself is untouched.
	assert.Equal(t, "o1", getOne(t, s, store.Tx.GetOrganization, "o1").ID, "organization after DeleteOrgRelays")
}
