package coordinator

import (
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
)

// deviceIDs lists the IDs of ds, sorted.
func deviceIDs(ds []api.Device) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// peers lists the IDs of the devices of orgID as the token sees them.
func (e *env) peers(orgID, token string) []string {
	e.t.Helper()
	var ds []api.Device
	e.call("GET", orgPath(orgID, "/devices"), token, nil, 200, &ds)
	return deviceIDs(ds)
}

// TestOnboardingFlow follows the seed's v2 flow end to end.
func TestOnboardingFlow(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	bob := e.newUser("bob")

	var me api.User
	e.call("GET", "/api/v1/users/me", alice.Token, nil, 200, &me)
	require.Equal(t, api.User{ID: alice.ID, Username: "alice", CreatedAt: me.CreatedAt}, me)
	// The personal organization exists, is alice's, and has its own /16 and ULA /64.
	var personal, bobPersonal api.Organization
	e.call("GET", orgPath(alice.PersonalOrg, ""), alice.Token, nil, 200, &personal)
	require.Equal(t, "alice", personal.Name)
	require.Equal(t, alice.ID, personal.OwnerID)
	p4, p6 := netip.MustParsePrefix(personal.IPv4CIDR), netip.MustParsePrefix(personal.IPv6CIDR)
	require.Equal(t, 16, p4.Bits())
	require.True(t, netip.MustParsePrefix("100.64.0.0/10").Contains(p4.Addr()), "personal org IPv4 %s", p4)
	require.Equal(t, 64, p6.Bits())
	require.EqualValues(t, 0xfd, p6.Addr().As16()[0], "personal org IPv6 %s", p6)
	e.call("GET", orgPath(bob.PersonalOrg, ""), bob.Token, nil, 200, &bobPersonal)
	require.NotEqual(t, personal.IPv4CIDR, bobPersonal.IPv4CIDR, "personal orgs share a prefix")
	require.NotEqual(t, personal.IPv6CIDR, bobPersonal.IPv6CIDR, "personal orgs share a prefix")

	// alice creates an organization and a reusable registration key.
	acme := e.newOrg(alice, "acme", "")
	var orgs []api.Organization
	e.call("GET", "/api/v1/organizations", alice.Token, nil, 200, &orgs)
	require.Len(t, orgs, 2)
	key := e.newRegKey(alice, acme.ID, api.CreateRegKeyRequest{Description: "laptops"})
	require.NotEmpty(t, key.Secret)
	require.False(t, key.SingleUse)
	var keyAgain api.RegKey
	e.call("GET", "/api/v1/reg-keys/"+key.ID, alice.Token, nil, 200, &keyAgain)
	require.Empty(t, keyAgain.Secret, "secret shown twice")

	// Two devices register with the key; each sees the other in the peer list.
	d1 := e.register(key.Secret, "", "laptop", newKey(t), 201)
	d2 := e.register(key.Secret, acme.ID, "desktop", newKey(t), 201)
	acme4 := netip.MustParsePrefix(acme.IPv4CIDR)
	require.Equal(t, acme4.Addr().Next().String(), d1.TunnelIPv4)
	require.Equal(t, acme4.Addr().Next().Next().String(), d2.TunnelIPv4)
	require.True(t, netip.MustParsePrefix(acme.IPv6CIDR).Contains(netip.MustParseAddr(d1.TunnelIPv6)))
	require.NotEqual(t, d1.TunnelIPv6, d2.TunnelIPv6)
	require.Equal(t, sorted(d1.ID, d2.ID), e.peers(acme.ID, d1.Token))

	// bob cannot see acme yet; alice invites him; he accepts and sees the devices.
	e.fails(404, "", "GET", orgPath(acme.ID, "/devices"), bob.Token, nil)
	var inv api.Invitation
	e.call("POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "bob"}, 201, &inv)
	require.Equal(t, api.InvitationPending, inv.Status)
	require.Equal(t, "acme", inv.OrganizationName)
	require.Equal(t, "bob", inv.Username)
	require.Equal(t, api.RoleMember, inv.Role)
	require.Equal(t, 7*24*time.Hour, inv.ExpiresAt.Sub(inv.CreatedAt), "default validity")
	var invs []api.Invitation
	e.call("GET", "/api/v1/invitations", bob.Token, nil, 200, &invs)
	require.Len(t, invs, 1)
	require.Equal(t, inv.ID, invs[0].ID)
	e.call("POST", "/api/v1/invitations/"+inv.ID+"/accept", bob.Token, nil, 200, &inv)
	require.Equal(t, api.InvitationAccepted, inv.Status)
	require.Equal(t, sorted(d1.ID, d2.ID), e.peers(acme.ID, bob.Token))
	var members []api.Member
	e.call("GET", orgPath(acme.ID, "/members"), bob.Token, nil, 200, &members)
	require.Len(t, members, 2)

	// bob registers his own device with his user token; everyone sees three devices.
	d3 := e.register(bob.Token, acme.ID, "bobs-pc", newKey(t), 201)
	require.Equal(t, bob.ID, d3.OwnerID)
	var all []api.Device
	e.call("GET", "/api/v1/devices", alice.Token, nil, 200, &all)
	require.Equal(t, sorted(d1.ID, d2.ID, d3.ID), deviceIDs(all))

	// The device token reads itself and updates its endpoints.
	var self api.Device
	e.call("GET", devicePath(d1.ID, ""), d1.Token, nil, 200, &self)
	eps := []api.Endpoint{{Source: api.EndpointReflexive, Address: "203.0.113.7:4242"}}
	e.call("PATCH", devicePath(d1.ID, ""), d1.Token, api.UpdateDeviceRequest{Endpoints: &eps}, 200, &self)
	require.Equal(t, eps, self.Endpoints)

	// bob leaves: his device goes with him.
	e.call("DELETE", orgPath(acme.ID, "/members/"+bob.ID), bob.Token, nil, 204, nil)
	require.Equal(t, sorted(d1.ID, d2.ID), e.peers(acme.ID, alice.Token))
	e.fails(404, "", "GET", orgPath(acme.ID, ""), bob.Token, nil)

	// A device deletes itself; its token stops working.
	e.call("DELETE", devicePath(d2.ID, ""), d2.Token, nil, 204, nil)
	e.fails(401, api.CodeUnauthorized, "GET", devicePath(d2.ID, ""), d2.Token, nil)
	// The organization goes; its devices with it.
	e.call("DELETE", orgPath(acme.ID, ""), alice.Token, nil, 204, nil)
	e.fails(401, "", "GET", devicePath(d1.ID, ""), d1.Token, nil)
	e.fails(403, api.CodeForbidden, "DELETE", orgPath(alice.PersonalOrg, ""), alice.Token, nil)
}

func TestRegKeyRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		alice := e.newUser("alice")
		registers := func(status int, cred, hostname string) {
			t.Helper()
			e.fails(status, "", "POST", "/api/v1/devices", cred, api.RegisterDeviceRequest{PublicKey: newKey(t).Pub, Hostname: hostname})
		}
		single := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{SingleUse: true})
		e.register(single.Secret, "", "one", newKey(t), 201)
		registers(401, single.Secret, "two")
		var k api.RegKey
		e.call("GET", "/api/v1/reg-keys/"+single.ID, alice.Token, nil, 200, &k)
		require.True(t, k.Used, "single-use key marked used")

		expiring := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{ExpiresInSeconds: 60})
		require.WithinDuration(t, time.Now().Add(time.Minute), *expiring.ExpiresAt, 0)
		time.Sleep(time.Minute - time.Nanosecond)
		e.register(expiring.Secret, "", "three", newKey(t), 201)
		time.Sleep(time.Nanosecond)
		registers(401, expiring.Secret, "four")

		deleted := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{})
		e.call("DELETE", "/api/v1/reg-keys/"+deleted.ID, alice.Token, nil, 204, nil)
		registers(401, deleted.Secret, "five")
		// A wrong secret for a real key ID is 401 too.
		registers(401, single.Secret[:len(single.Secret)-2]+"xx", "six")
		var keys []api.RegKey
		e.call("GET", "/api/v1/reg-keys", alice.Token, nil, 200, &keys)
		require.Len(t, keys, 2)

		// User tokens expire the same way.
		var tok api.Token
		e.call("POST", "/api/v1/users/"+alice.ID+"/tokens", adminToken, api.CreateTokenRequest{ExpiresInSeconds: 10}, 201, &tok)
		time.Sleep(10*time.Second - time.Nanosecond)
		e.call("GET", "/api/v1/users/me", tok.Secret, nil, 200, nil)
		time.Sleep(time.Nanosecond)
		e.fails(401, api.CodeUnauthorized, "GET", "/api/v1/users/me", tok.Secret, nil)
	})
}

func TestInvitationLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		alice, bob, carol := e.newUser("alice"), e.newUser("bob"), e.newUser("carol")
		acme := e.newOrg(alice, "acme", "")
		invite := func(u, role string, secs int64) api.Invitation {
			var inv api.Invitation
			e.call("POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: u, Role: role, ExpiresInSeconds: secs}, 201, &inv)
			return inv
		}
		path := func(inv api.Invitation, action string) string { return "/api/v1/invitations/" + inv.ID + action }
		status := func(inv api.Invitation) string {
			var got api.Invitation
			e.call("GET", path(inv, ""), bob.Token, nil, 200, &got)
			return got.Status
		}

		// Expiry: a pending invitation past its time reads as expired and cannot be accepted.
		inv := invite("bob", "", 3600)
		e.fails(409, "", "POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "bob"})
		time.Sleep(time.Hour - time.Nanosecond)
		require.Equal(t, api.InvitationPending, status(inv))
		time.Sleep(time.Nanosecond)
		require.Equal(t, api.InvitationExpired, status(inv))
		e.fails(410, api.CodeGone, "POST", path(inv, "/accept"), bob.Token, nil)
		// An expired invitation no longer blocks a new one, which lasts InvitationTTL.
		inv = invite("bob", "", 0)
		require.WithinDuration(t, time.Now().Add(7*24*time.Hour), inv.ExpiresAt, 0)
		// Decline, then accepting fails.
		e.call("POST", path(inv, "/decline"), bob.Token, nil, 200, nil)
		require.Equal(t, api.InvitationDeclined, status(inv))
		e.fails(410, "", "POST", path(inv, "/accept"), bob.Token, nil)
		// Revoke, then accepting fails.
		inv = invite("bob", "", 0)
		e.call("DELETE", path(inv, ""), alice.Token, nil, 204, nil)
		e.fails(410, "", "POST", path(inv, "/accept"), bob.Token, nil)
		e.fails(410, "", "DELETE", path(inv, ""), alice.Token, nil)
		// Only the invitee accepts; a second accept fails; inviting a member conflicts.
		inv = invite("bob", "", 0)
		e.fails(404, "", "POST", path(inv, "/accept"), carol.Token, nil)
		e.fails(403, "", "POST", path(inv, "/accept"), alice.Token, nil)
		e.call("POST", path(inv, "/accept"), bob.Token, nil, 200, nil)
		e.fails(410, "", "POST", path(inv, "/accept"), bob.Token, nil)
		e.fails(409, "", "POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "bob"})
		e.fails(404, "", "POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "nobody"})
		// An owner-role invitation makes an owner who can make keys.
		e.call("POST", path(invite("carol", api.RoleOwner, 0), "/accept"), carol.Token, nil, 200, nil)
		e.call("POST", "/api/v1/reg-keys", carol.Token, api.CreateRegKeyRequest{OrganizationID: acme.ID}, 201, nil)
		// Bob (member) may not invite, carol (owner) may not remove the creator.
		e.fails(403, "", "POST", "/api/v1/invitations", bob.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "alice"})
		e.fails(403, "", "DELETE", orgPath(acme.ID, "/members/"+alice.ID), carol.Token, nil)
		var invs []api.Invitation
		e.call("GET", "/api/v1/invitations", alice.Token, nil, 200, &invs)
		count := map[string]int{}
		for _, inv := range invs {
			count[inv.Status]++
		}
		assert.Equal(t, map[string]int{api.InvitationExpired: 1, api.InvitationDeclined: 1, api.InvitationRevoked: 1, api.InvitationAccepted: 2}, count)
	})
}

func TestIPAMExhaustionAndRelease(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	tiny := e.newOrg(alice, "tiny", "10.9.8.0/30")
	key := e.newRegKey(alice, tiny.ID, api.CreateRegKeyRequest{})
	a := e.register(key.Secret, "", "a", newKey(t), 201)
	b := e.register(key.Secret, "", "b", newKey(t), 201)
	require.Equal(t, []string{"10.9.8.1", "10.9.8.2"}, []string{a.TunnelIPv4, b.TunnelIPv4})
	e.fails(409, api.CodePoolExhausted, "POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{PublicKey: newKey(t).Pub, Hostname: "c"})
	// Moving a device into the full organization fails the same way.
	other := e.register(alice.Token, alice.PersonalOrg, "other", newKey(t), 201)
	e.fails(409, api.CodePoolExhausted, "PATCH", devicePath(other.ID, ""), alice.Token, api.UpdateDeviceRequest{OrganizationID: &tiny.ID})
	e.call("DELETE", devicePath(a.ID, ""), alice.Token, nil, 204, nil)
	c := e.register(key.Secret, "", "c", newKey(t), 201)
	require.Equal(t, []string{a.TunnelIPv4, a.TunnelIPv6}, []string{c.TunnelIPv4, c.TunnelIPv6}, "released addresses reused")
	// Bad CIDRs.
	for _, cidr := range []string{"10.0.0.1/24", "10.0.0.0/31", "fd00::/64", "nonsense", "10.0.0.0/7"} {
		e.fails(400, "", "POST", "/api/v1/organizations", alice.Token, api.CreateOrganizationRequest{Name: e.uniq("o"), IPv4CIDR: cidr})
	}
}

func TestDeviceMove(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.newUser("alice"), e.newUser("bob")
	src := e.newOrg(alice, "src", "10.1.0.0/24")
	dst := e.newOrg(alice, "dst", "10.2.0.0/24")
	key := e.newRegKey(alice, src.ID, api.CreateRegKeyRequest{})
	d := e.register(key.Secret, "", "mover", newKey(t), 201)
	peer := e.register(key.Secret, "", "stay", newKey(t), 201)
	dstPeer := e.register(alice.Token, dst.ID, "there", newKey(t), 201)

	srcStream := e.openStream(orgPath(src.ID, "/events"), alice.Token, "")
	defer srcStream.close()
	dstStream := e.openStream(orgPath(dst.ID, "/events"), alice.Token, "")
	defer dstStream.close()
	devStream := e.openStream(devicePath(d.ID, "/events"), d.Token, "")
	defer devStream.close()
	for _, s := range []*sse{srcStream, dstStream, devStream} {
		require.Equal(t, api.EventSync, s.next().Type)
	}

	// The device cannot move itself; bob (not the owner) cannot move it; nor can alice move
	// it into an organization she is not in.
	move := func(orgID string) api.UpdateDeviceRequest { return api.UpdateDeviceRequest{OrganizationID: &orgID} }
	e.fails(403, "", "PATCH", devicePath(d.ID, ""), d.Token, move(dst.ID))
	e.fails(404, "", "PATCH", devicePath(d.ID, ""), bob.Token, move(dst.ID))
	e.fails(404, "", "PATCH", devicePath(d.ID, ""), alice.Token, move(bob.PersonalOrg))
	var moved api.Device
	e.call("PATCH", devicePath(d.ID, ""), alice.Token, move(dst.ID), 200, &moved)
	require.Equal(t, dst.ID, moved.OrganizationID)
	require.Equal(t, "10.2.0.2", moved.TunnelIPv4)
	require.True(t, netip.MustParsePrefix(dst.IPv6CIDR).Contains(netip.MustParseAddr(moved.TunnelIPv6)))
	ev := srcStream.next()
	require.Equal(t, api.EventDeviceRemoved, ev.Type, "src stream")
	require.Equal(t, d.ID, ev.Event.Device.ID)
	ev = dstStream.next()
	require.Equal(t, api.EventDeviceAdded, ev.Type, "dst stream")
	require.Equal(t, d.ID, ev.Event.Device.ID)
	require.Equal(t, "10.2.0.2", ev.Event.Device.TunnelIPv4)
	ev = devStream.next()
	require.Equal(t, api.EventSync, ev.Type, "device stream")
	require.Equal(t, dst.ID, ev.Event.OrganizationID)
	require.Equal(t, sorted(d.ID, dstPeer.ID), deviceIDs(ev.Event.Devices), "sync after move")
	// The device stream now follows the new organization.
	e.call("DELETE", devicePath(dstPeer.ID, ""), alice.Token, nil, 204, nil)
	ev = devStream.next()
	require.Equal(t, api.EventDeviceRemoved, ev.Type, "device stream")
	require.Equal(t, dstPeer.ID, ev.Event.Device.ID)
	// Its token now reads the new peer list, not the old.
	e.call("GET", orgPath(dst.ID, "/devices"), d.Token, nil, 200, nil)
	e.fails(404, "", "GET", orgPath(src.ID, "/devices"), d.Token, nil)
	require.Equal(t, []string{peer.ID}, e.peers(src.ID, alice.Token))
}

// TestOrganizationNames: only personal organizations' names are unique. Nobody can take a
// future user's name away, and a 409 never tells who else uses a name; a username itself is
// kept for that user's personal organization.
func TestOrganizationNames(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	carol := e.newUser("carol")
	zed := e.newOrg(carol, "zed", "")
	// Another user may use the same name: the answer reveals nothing about carol's.
	alices := e.newOrg(alice, "zed", "")
	require.NotEqual(t, zed.ID, alices.ID, "same organization twice")
	// The admin can still create user zed, with a personal organization named zed.
	var cu api.CreateUserResponse
	e.call("POST", "/api/v1/users", adminToken, api.CreateUserRequest{Username: "zed"}, 201, &cu)
	require.NotContains(t, []string{zed.ID, alices.ID}, cu.PersonalOrganizationID, "user zed got an existing organization")
	// A username is not available as a name for other organizations.
	for _, name := range []string{"alice", "zed"} {
		e.fails(409, api.CodeConflict, "POST", "/api/v1/organizations", carol.Token, api.CreateOrganizationRequest{Name: name})
	}
	e.fails(409, "", "POST", "/api/v1/users", adminToken, api.CreateUserRequest{Username: "zed"})
	// Each sees their own.
	var orgs []api.Organization
	e.call("GET", "/api/v1/organizations", carol.Token, nil, 200, &orgs)
	assert.Len(t, orgs, 2, "carol's organizations")
}
