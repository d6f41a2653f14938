package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func testUsers(t *testing.T, h *harness) {
	s, _ := h.new(t)
	// Inserted out of order: the list must be by creation time, then ID.
	users := []store.User{user("c", at(2*time.Second)), user("b", at(time.Second)), user("a", at(2*time.Second))}
	if got := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.User, error) { return tx.ListUsers(ctx) }); len(got) != 0 {
		t.Fatalf("ListUsers on empty store = %v", got)
	}
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, u := range users {
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
		}
		return nil
	})
	for _, u := range users {
		got := read(t, s, func(ctx context.Context, tx store.Tx) (store.User, error) { return tx.GetUser(ctx, u.ID) })
		equal(t, "GetUser", got, u)
		got = read(t, s, func(ctx context.Context, tx store.Tx) (store.User, error) {
			return tx.GetUserByUsername(ctx, u.Username)
		})
		equal(t, "GetUserByUsername", got, u)
	}
	list := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.User, error) { return tx.ListUsers(ctx) })
	equalIDs(t, "ListUsers", ids(list, func(u store.User) string { return u.ID }), []string{"b", "a", "c"})
	equal(t, "ListUsers[0]", list[0], users[1])

	wantErrTx(t, s, store.ErrConflict, "CreateUser with taken username", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateUser(ctx, store.User{ID: "d", Username: "name-a", CreatedAt: t0})
	})
	wantErrTx(t, s, store.ErrConflict, "CreateUser with taken ID", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateUser(ctx, store.User{ID: "a", Username: "other", CreatedAt: t0})
	})
	wantErrTx(t, s, store.ErrNotFound, "GetUser missing", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetUser(ctx, "nope")
		return err
	})
	wantErrTx(t, s, store.ErrNotFound, "GetUserByUsername missing", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetUserByUsername(ctx, "nope")
		return err
	})
	// Usernames are matched exactly.
	wantErrTx(t, s, store.ErrNotFound, "GetUserByUsername other case", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetUserByUsername(ctx, "NAME-A")
		return err
	})
}

func testTokens(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
	tokens := []store.Token{
		{ID: "t1", UserID: "u1", Description: "laptop", SecretHash: []byte{0, 1, 2, 0xfe, 0xff}, CreatedAt: at(time.Second)},
		{ID: "t2", UserID: "u1", Description: "", SecretHash: []byte("hash"), ExpiresAt: ptr(at(time.Hour + 789*time.Microsecond)), CreatedAt: at(2 * time.Second)},
	}
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, k := range tokens {
			if err := tx.CreateToken(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	for _, k := range tokens {
		got := read(t, s, func(ctx context.Context, tx store.Tx) (store.Token, error) { return tx.GetToken(ctx, k.ID) })
		equal(t, "GetToken "+k.ID, got, k)
		if (got.ExpiresAt == nil) != (k.ExpiresAt == nil) {
			t.Errorf("GetToken %s: ExpiresAt = %v, want %v", k.ID, got.ExpiresAt, k.ExpiresAt)
		}
	}
	wantErrTx(t, s, store.ErrConflict, "CreateToken with taken ID", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateToken(ctx, store.Token{ID: "t1", UserID: "u2", CreatedAt: t0})
	})
	wantErrTx(t, s, store.ErrNotFound, "GetToken missing", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetToken(ctx, "nope")
		return err
	})
}

func testOrganizations(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
	o3 := store.Organization{
		ID: "o3", Name: "personal-u3", Description: "", OwnerID: "u3", Personal: true,
		IPv4CIDR: "100.65.0.0/16", IPv6CIDR: "fd12:3456:789a:1::/64", CreatedAt: at(-time.Hour),
	}
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.CreateOrganization(ctx, o3) })
	for _, o := range []store.Organization{org("o1", "u1", 1), org("o2", "u2", 2), o3} {
		got := read(t, s, func(ctx context.Context, tx store.Tx) (store.Organization, error) {
			return tx.GetOrganization(ctx, o.ID)
		})
		equal(t, "GetOrganization "+o.ID, got, o)
	}
	all := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Organization, error) { return tx.ListOrganizations(ctx) })
	oid := func(o store.Organization) string { return o.ID }
	equalIDs(t, "ListOrganizations", ids(all, oid), []string{"o3", "o1", "o2"})

	for user, want := range map[string][]string{"u1": {"o1"}, "u2": {"o1", "o2"}, "u3": nil, "nobody": nil} {
		got := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Organization, error) {
			return tx.ListOrganizationsForUser(ctx, user)
		})
		equalIDs(t, "ListOrganizationsForUser "+user, ids(got, oid), want)
	}
	got := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Organization, error) {
		return tx.ListOrganizationsForUser(ctx, "u2")
	})
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
	wantErrTx(t, s, store.ErrNotFound, "GetOrganization missing", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetOrganization(ctx, "nope")
		return err
	})
	wantErrTx(t, s, store.ErrNotFound, "DeleteOrganization missing", func(ctx context.Context, tx store.Tx) error {
		return tx.DeleteOrganization(ctx, "nope")
	})
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteOrganization(ctx, "o3") })
	wantErrTx(t, s, store.ErrNotFound, "GetOrganization deleted", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetOrganization(ctx, "o3")
		return err
	})
	// The personal name is free again.
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		o := org("o5", "u3", 5)
		o.Name, o.Personal = "personal-u3", true
		return tx.CreateOrganization(ctx, o)
	})
}

func testMembers(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
	got := read(t, s, func(ctx context.Context, tx store.Tx) (store.Membership, error) { return tx.GetMember(ctx, "o1", "u2") })
	equal(t, "GetMember", got, store.Membership{OrganizationID: "o1", UserID: "u2", Username: "name-u2", Role: "member", JoinedAt: at(2 * time.Second)})

	m3 := store.Membership{OrganizationID: "o1", UserID: "u3", Username: "ignored-on-write", Role: "member", JoinedAt: at(time.Second)}
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.AddMember(ctx, m3) })
	list := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Membership, error) { return tx.ListMembers(ctx, "o1") })
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
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.RemoveMember(ctx, "o1", "u2") })
	wantErrTx(t, s, store.ErrNotFound, "GetMember removed", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetMember(ctx, "o1", "u2")
		return err
	})
	wantErrTx(t, s, store.ErrNotFound, "RemoveMember again", func(ctx context.Context, tx store.Tx) error {
		return tx.RemoveMember(ctx, "o1", "u2")
	})
	// u2 is still in o2; removal touched only the one membership.
	orgs := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Organization, error) {
		return tx.ListOrganizationsForUser(ctx, "u2")
	})
	equalIDs(t, "ListOrganizationsForUser after removal", ids(orgs, func(o store.Organization) string { return o.ID }), []string{"o2"})
	empty := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Membership, error) { return tx.ListMembers(ctx, "nope") })
	if len(empty) != 0 {
		t.Errorf("ListMembers of unknown organization = %v", empty)
	}
}

func testInvitations(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
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
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, i := range invs {
			if err := tx.CreateInvitation(ctx, i); err != nil {
				return err
			}
		}
		return nil
	})
	for _, i := range invs {
		got := read(t, s, func(ctx context.Context, tx store.Tx) (store.Invitation, error) { return tx.GetInvitation(ctx, i.ID) })
		equal(t, "GetInvitation "+i.ID, got, i)
	}
	iid := func(i store.Invitation) string { return i.ID }
	for u, want := range map[string][]string{"u3": {"i3", "i1", "i2"}, "u1": {"i4"}, "u2": nil} {
		got := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Invitation, error) {
			return tx.ListInvitationsForUser(ctx, u)
		})
		equalIDs(t, "ListInvitationsForUser "+u, ids(got, iid), want)
	}
	for o, want := range map[string][]string{"o1": {"i1", "i2"}, "o2": {"i3", "i4"}, "nope": nil} {
		got := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Invitation, error) {
			return tx.ListInvitationsForOrganization(ctx, o)
		})
		equalIDs(t, "ListInvitationsForOrganization "+o, ids(got, iid), want)
	}

	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.SetInvitationStatus(ctx, "i1", "accepted") })
	got := read(t, s, func(ctx context.Context, tx store.Tx) (store.Invitation, error) { return tx.GetInvitation(ctx, "i1") })
	want := invs[1]
	want.Status = "accepted"
	equal(t, "GetInvitation after SetInvitationStatus", got, want)
	other := read(t, s, func(ctx context.Context, tx store.Tx) (store.Invitation, error) { return tx.GetInvitation(ctx, "i2") })
	equal(t, "other invitation untouched", other, invs[0])

	wantErrTx(t, s, store.ErrConflict, "CreateInvitation with taken ID", func(ctx context.Context, tx store.Tx) error {
		return tx.CreateInvitation(ctx, invs[0])
	})
	wantErrTx(t, s, store.ErrNotFound, "GetInvitation missing", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetInvitation(ctx, "nope")
		return err
	})
	wantErrTx(t, s, store.ErrNotFound, "SetInvitationStatus missing", func(ctx context.Context, tx store.Tx) error {
		return tx.SetInvitationStatus(ctx, "nope", "revoked")
	})
}

func testRegKeys(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
	keys := []store.RegKey{
		{ID: "k1", OrganizationID: "o1", OwnerID: "u1", Description: "ci runners", SecretHash: []byte{9, 8, 7, 0},
			SingleUse: true, Ephemeral: true, ExpiresAt: ptr(at(24*time.Hour + 5*time.Microsecond)), CreatedAt: at(2 * time.Second)},
		{ID: "k2", OrganizationID: "o1", OwnerID: "u2", SecretHash: []byte("h2"), CreatedAt: at(time.Second)},
		{ID: "k3", OrganizationID: "o2", OwnerID: "u2", SecretHash: []byte("h3"), Used: true, CreatedAt: at(0)},
	}
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, k := range keys {
			if err := tx.CreateRegKey(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	for _, k := range keys {
		got := read(t, s, func(ctx context.Context, tx store.Tx) (store.RegKey, error) { return tx.GetRegKey(ctx, k.ID) })
		equal(t, "GetRegKey "+k.ID, got, k)
		if (got.ExpiresAt == nil) != (k.ExpiresAt == nil) {
			t.Errorf("GetRegKey %s: ExpiresAt = %v, want %v", k.ID, got.ExpiresAt, k.ExpiresAt)
		}
	}
	kid := func(k store.RegKey) string { return k.ID }
	list := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.RegKey, error) { return tx.ListRegKeys(ctx, "o1") })
	equalIDs(t, "ListRegKeys o1", ids(list, kid), []string{"k2", "k1"})

	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.MarkRegKeyUsed(ctx, "k1") })
	got := read(t, s, func(ctx context.Context, tx store.Tx) (store.RegKey, error) { return tx.GetRegKey(ctx, "k1") })
	want := keys[0]
	want.Used = true
	equal(t, "GetRegKey after MarkRegKeyUsed", got, want)
	// Marking twice is harmless: the key exists.
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.MarkRegKeyUsed(ctx, "k1") })

	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteRegKey(ctx, "k2") })
	list = read(t, s, func(ctx context.Context, tx store.Tx) ([]store.RegKey, error) { return tx.ListRegKeys(ctx, "o1") })
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

func testDevices(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
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
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, d := range []store.Device{full, bare, elsewhere} {
			if err := tx.CreateDevice(ctx, d); err != nil {
				return err
			}
		}
		return nil
	})
	for _, d := range []store.Device{full, bare, elsewhere} {
		got := read(t, s, func(ctx context.Context, tx store.Tx) (store.Device, error) { return tx.GetDevice(ctx, d.ID) })
		equal(t, "GetDevice "+d.ID, got, d)
		got = read(t, s, func(ctx context.Context, tx store.Tx) (store.Device, error) {
			return tx.GetDeviceByPublicKey(ctx, d.PublicKey)
		})
		equal(t, "GetDeviceByPublicKey "+d.ID, got, d)
	}
	did := func(d store.Device) string { return d.ID }
	list := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Device, error) { return tx.ListDevices(ctx, "o1") })
	equalIDs(t, "ListDevices o1", ids(list, did), []string{"d0", "d1"})
	if len(list) == 2 {
		equal(t, "ListDevices record", list[1], full)
	}
	list = read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Device, error) {
		return tx.ListDevicesForOwner(ctx, "u1")
	})
	equalIDs(t, "ListDevicesForOwner u1 (across organizations)", ids(list, did), []string{"d1", "d2"})
	list = read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Device, error) {
		return tx.ListDevicesForOwner(ctx, "u3")
	})
	equalIDs(t, "ListDevicesForOwner u3", ids(list, did), nil)
	list = read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Device, error) { return tx.ListDevices(ctx, "nope") })
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
	wantErrTx(t, s, store.ErrNotFound, "GetDevice deleted", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetDevice(ctx, "d1")
		return err
	})
	// Its public key and addresses are free again.
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		d := full
		d.ID = "d1b"
		return tx.CreateDevice(ctx, d)
	})
}

func testDeviceAddressUniqueness(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
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
	got := read(t, s, func(ctx context.Context, tx store.Tx) (store.Device, error) { return tx.GetDevice(ctx, "d2") })
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
	got = read(t, s, func(ctx context.Context, tx store.Tx) (store.Device, error) { return tx.GetDevice(ctx, "n2") })
	if got.TunnelIPv6 != "" {
		t.Errorf("empty TunnelIPv6 read back as %q", got.TunnelIPv6)
	}
}

func testUpdateDevice(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
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
	got := read(t, s, func(ctx context.Context, tx store.Tx) (store.Device, error) { return tx.GetDevice(ctx, "d1") })
	equal(t, "GetDevice after UpdateDevice", got, upd)
	got = read(t, s, func(ctx context.Context, tx store.Tx) (store.Device, error) {
		return tx.GetDeviceByPublicKey(ctx, "new-pk")
	})
	equal(t, "GetDeviceByPublicKey after UpdateDevice", got, upd)
	wantErrTx(t, s, store.ErrNotFound, "GetDeviceByPublicKey old key", func(ctx context.Context, tx store.Tx) error {
		_, err := tx.GetDeviceByPublicKey(ctx, "pk-d1")
		return err
	})
	did := func(d store.Device) string { return d.ID }
	l1 := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Device, error) { return tx.ListDevices(ctx, "o1") })
	equalIDs(t, "ListDevices o1 after move", ids(l1, did), []string{"d2"})
	l2 := read(t, s, func(ctx context.Context, tx store.Tx) ([]store.Device, error) { return tx.ListDevices(ctx, "o2") })
	equalIDs(t, "ListDevices o2 after move", ids(l2, did), []string{"d1", "d3"})

	// Clearing the lists, the hash and the pending token sticks.
	cleared := upd
	cleared.Endpoints, cleared.ChildPrefixes, cleared.TokenHash, cleared.SymmetricNAT = nil, nil, nil, false
	cleared.PendingTokenID, cleared.PendingTokenHash = "", nil
	do(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UpdateDevice(ctx, cleared) })
	got = read(t, s, func(ctx context.Context, tx store.Tx) (store.Device, error) { return tx.GetDevice(ctx, "d1") })
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

// testMissingReferences checks that records cannot point at organizations or users that do
// not exist; engines report it as ErrNotFound.
func testMissingReferences(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
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

func testDeleteOrganizationCascades(t *testing.T, h *harness) {
	s, _ := h.new(t)
	world(t, s)
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
	latest := read(t, s, func(ctx context.Context, tx store.Tx) (int64, error) { return tx.LatestRevision(ctx) })
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
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		if l, err := tx.ListMembers(ctx, "o1"); err != nil || len(l) != 0 {
			t.Errorf("ListMembers of deleted organization = %v, %v", l, err)
		}
		if l, err := tx.ListInvitationsForUser(ctx, "u3"); err != nil || len(l) != 1 || l[0].ID != "inv-o2" {
			t.Errorf("ListInvitationsForUser after delete = %v, %v; want only inv-o2", l, err)
		}
		if l, err := tx.ListRegKeys(ctx, "o1"); err != nil || len(l) != 0 {
			t.Errorf("ListRegKeys of deleted organization = %v, %v", l, err)
		}
		if l, err := tx.ListDevicesForOwner(ctx, "u1"); err != nil || len(l) != 1 || l[0].ID != "dev-o2" {
			t.Errorf("ListDevicesForOwner after delete = %v, %v; want only dev-o2", l, err)
		}
		if r, err := tx.GetOrgRelays(ctx, "o2"); err != nil || r.OrganizationID != "o2" {
			t.Errorf("GetOrgRelays of the other organization = %+v, %v", r, err)
		}
		if l, err := tx.ListEvents(ctx, "o1", "", 0, 100); err != nil || len(l) != 0 {
			t.Errorf("ListEvents of deleted organization = %v, %v", l, err)
		}
		if l, err := tx.ListEvents(ctx, "o2", "", 0, 100); err != nil || len(l) != 1 || l[0].Revision != keep {
			t.Errorf("ListEvents of the other organization = %v, %v", l, err)
		}
		if l, err := tx.ListOrganizationsForUser(ctx, "u1"); err != nil || len(l) != 0 {
			t.Errorf("ListOrganizationsForUser u1 after delete = %v, %v", l, err)
		}
		// Users are not the organization's to delete.
		if _, err := tx.GetUser(ctx, "u1"); err != nil {
			t.Errorf("GetUser after DeleteOrganization: %v", err)
		}
		if got, err := tx.LatestRevision(ctx); err != nil || got != latest {
			t.Errorf("LatestRevision after DeleteOrganization = %d, %v; want %d", got, err, latest)
		}
		return nil
	})
	// The deleted organization's name, public keys and addresses are free again.
	do(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateOrganization(ctx, org("o1", "u1", 1)); err != nil {
			return err
		}
		return tx.CreateDevice(ctx, device("dev-o1", "o1", "u1", 1))
	})
}
