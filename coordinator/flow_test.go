package coordinator

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
)

func deviceIDs(ds []api.Device) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// TestOnboardingFlow follows the seed's v2 flow end to end.
func TestOnboardingFlow(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	bob := e.newUser("bob")

	var me api.User
	e.call("GET", "/api/v1/users/me", alice.Token, nil, 200, &me)
	if me.ID != alice.ID || me.Username != "alice" {
		t.Fatalf("me = %+v", me)
	}
	// The personal organization exists, is alice's, and has its own /16 and ULA /64.
	var personal api.Organization
	e.call("GET", "/api/v1/organizations/"+alice.PersonalOrg, alice.Token, nil, 200, &personal)
	if personal.Name != "alice" || personal.OwnerID != alice.ID {
		t.Fatalf("personal org %+v", personal)
	}
	p4 := netip.MustParsePrefix(personal.IPv4CIDR)
	p6 := netip.MustParsePrefix(personal.IPv6CIDR)
	if p4.Bits() != 16 || !netip.MustParsePrefix("100.64.0.0/10").Contains(p4.Addr()) || p6.Bits() != 64 || p6.Addr().As16()[0] != 0xfd {
		t.Fatalf("personal org prefixes %s %s", p4, p6)
	}
	var bobPersonal api.Organization
	e.call("GET", "/api/v1/organizations/"+bob.PersonalOrg, bob.Token, nil, 200, &bobPersonal)
	if bobPersonal.IPv4CIDR == personal.IPv4CIDR || bobPersonal.IPv6CIDR == personal.IPv6CIDR {
		t.Fatalf("personal orgs share prefixes: %+v %+v", personal, bobPersonal)
	}

	// alice creates an organization and a reusable registration key.
	acme := e.newOrg(alice, "acme", "")
	var orgs []api.Organization
	e.call("GET", "/api/v1/organizations", alice.Token, nil, 200, &orgs)
	if len(orgs) != 2 {
		t.Fatalf("alice's orgs: %+v", orgs)
	}
	key := e.newRegKey(alice, acme.ID, api.CreateRegKeyRequest{Description: "laptops"})
	if key.Secret == "" || key.SingleUse {
		t.Fatalf("key %+v", key)
	}
	var keyAgain api.RegKey
	e.call("GET", "/api/v1/reg-keys/"+key.ID, alice.Token, nil, 200, &keyAgain)
	if keyAgain.Secret != "" {
		t.Fatal("secret shown twice")
	}

	// Two devices register with the key; each sees the other in the peer list.
	d1 := e.register(key.Secret, "", "laptop", newKey(t), 201)
	d2 := e.register(key.Secret, acme.ID, "desktop", newKey(t), 201)
	acme4 := netip.MustParsePrefix(acme.IPv4CIDR)
	if d1.TunnelIPv4 != acme4.Addr().Next().String() || d2.TunnelIPv4 != acme4.Addr().Next().Next().String() {
		t.Fatalf("addresses %s %s in %s", d1.TunnelIPv4, d2.TunnelIPv4, acme4)
	}
	if !netip.MustParsePrefix(acme.IPv6CIDR).Contains(netip.MustParseAddr(d1.TunnelIPv6)) || d1.TunnelIPv6 == d2.TunnelIPv6 {
		t.Fatalf("ipv6 %s %s in %s", d1.TunnelIPv6, d2.TunnelIPv6, acme.IPv6CIDR)
	}
	var peers []api.Device
	e.call("GET", "/api/v1/organizations/"+acme.ID+"/devices", d1.Token, nil, 200, &peers)
	if got, want := deviceIDs(peers), sorted(d1.ID, d2.ID); !slices.Equal(got, want) {
		t.Fatalf("peers %v want %v", got, want)
	}

	// bob cannot see acme yet; alice invites him; he accepts and sees the devices.
	if st, _ := e.errCode("GET", "/api/v1/organizations/"+acme.ID+"/devices", bob.Token, nil); st != 404 {
		t.Fatalf("bob before joining: %d", st)
	}
	var inv api.Invitation
	e.call("POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "bob"}, 201, &inv)
	if inv.Status != api.InvitationPending || inv.OrganizationName != "acme" || inv.Username != "bob" || inv.Role != api.RoleMember {
		t.Fatalf("invitation %+v", inv)
	}
	if d := inv.ExpiresAt.Sub(inv.CreatedAt); d != 7*24*time.Hour {
		t.Fatalf("default validity %v", d)
	}
	var invs []api.Invitation
	e.call("GET", "/api/v1/invitations", bob.Token, nil, 200, &invs)
	if len(invs) != 1 || invs[0].ID != inv.ID {
		t.Fatalf("bob's invitations %+v", invs)
	}
	e.call("POST", "/api/v1/invitations/"+inv.ID+"/accept", bob.Token, nil, 200, &inv)
	if inv.Status != api.InvitationAccepted {
		t.Fatalf("after accept %+v", inv)
	}
	e.call("GET", "/api/v1/organizations/"+acme.ID+"/devices", bob.Token, nil, 200, &peers)
	if got, want := deviceIDs(peers), sorted(d1.ID, d2.ID); !slices.Equal(got, want) {
		t.Fatalf("bob sees %v want %v", got, want)
	}
	var members []api.Member
	e.call("GET", "/api/v1/organizations/"+acme.ID+"/members", bob.Token, nil, 200, &members)
	if len(members) != 2 {
		t.Fatalf("members %+v", members)
	}

	// bob registers his own device with his user token; everyone sees three devices.
	d3 := e.register(bob.Token, acme.ID, "bobs-pc", newKey(t), 201)
	if d3.OwnerID != bob.ID {
		t.Fatalf("owner %s", d3.OwnerID)
	}
	e.call("GET", "/api/v1/devices", alice.Token, nil, 200, &peers)
	if got, want := deviceIDs(peers), sorted(d1.ID, d2.ID, d3.ID); !slices.Equal(got, want) {
		t.Fatalf("alice's devices %v want %v", got, want)
	}

	// The device token reads itself and updates its endpoints.
	var self api.Device
	e.call("GET", "/api/v1/devices/"+d1.ID, d1.Token, nil, 200, &self)
	eps := []api.Endpoint{{Source: api.EndpointReflexive, Address: "203.0.113.7:4242"}}
	e.call("PATCH", "/api/v1/devices/"+d1.ID, d1.Token, api.UpdateDeviceRequest{Endpoints: &eps}, 200, &self)
	if len(self.Endpoints) != 1 || self.Endpoints[0].Address != "203.0.113.7:4242" {
		t.Fatalf("endpoints %+v", self.Endpoints)
	}

	// bob leaves: his device goes with him.
	e.call("DELETE", "/api/v1/organizations/"+acme.ID+"/members/"+bob.ID, bob.Token, nil, 204, nil)
	e.call("GET", "/api/v1/organizations/"+acme.ID+"/devices", alice.Token, nil, 200, &peers)
	if got, want := deviceIDs(peers), sorted(d1.ID, d2.ID); !slices.Equal(got, want) {
		t.Fatalf("after bob left %v want %v", got, want)
	}
	if st, _ := e.errCode("GET", "/api/v1/organizations/"+acme.ID, bob.Token, nil); st != 404 {
		t.Fatalf("bob after leaving: %d", st)
	}

	// A device deletes itself; its token stops working.
	e.call("DELETE", "/api/v1/devices/"+d2.ID, d2.Token, nil, 204, nil)
	if st, code := e.errCode("GET", "/api/v1/devices/"+d2.ID, d2.Token, nil); st != 401 || code != api.CodeUnauthorized {
		t.Fatalf("deleted device token: %d %s", st, code)
	}
	// The organization goes; its devices with it.
	e.call("DELETE", "/api/v1/organizations/"+acme.ID, alice.Token, nil, 204, nil)
	if st, _ := e.errCode("GET", "/api/v1/devices/"+d1.ID, d1.Token, nil); st != 401 {
		t.Fatalf("device of deleted org: %d", st)
	}
	if st, code := e.errCode("DELETE", "/api/v1/organizations/"+alice.PersonalOrg, alice.Token, nil); st != 403 || code != api.CodeForbidden {
		t.Fatalf("delete personal org: %d %s", st, code)
	}
	_ = strconv.Itoa
}

func TestSealedTokenAndReRegistration(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	key := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{})
	k := newKey(t)
	d := e.register(key.Secret, "", "node", k, 201)
	// The device's owner re-registers it with her user token: the request is applied and the
	// token replaced at once. Another private key cannot open the sealed token.
	var resp api.RegisterDeviceResponse
	e.call("POST", "/api/v1/devices", alice.Token, api.RegisterDeviceRequest{OrganizationID: alice.PersonalOrg, PublicKey: k.Pub, Hostname: "node2"}, 200, &resp)
	if resp.Device.ID != d.ID || resp.Device.TunnelIPv4 != d.TunnelIPv4 || resp.Device.TunnelIPv6 != d.TunnelIPv6 || resp.Device.Hostname != "node2" || resp.Pending {
		t.Fatalf("owner's re-registration: %+v (pending %v) vs %+v", resp.Device, resp.Pending, d.Device)
	}
	if _, err := openWith(newKey(t).Priv, resp.SealedToken); err == nil {
		t.Fatal("a stranger opened the sealed token")
	}
	fresh, err := openWith(k.Priv, resp.SealedToken)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == d.Token {
		t.Fatal("re-registration returned the same token")
	}
	// The old token is replaced by the fresh one.
	if st, _ := e.errCode("GET", "/api/v1/devices/"+d.ID, d.Token, nil); st != 401 {
		t.Fatalf("old token: %d", st)
	}
	e.call("GET", "/api/v1/devices/"+d.ID, fresh, nil, 200, nil)
	// The same with the registration key answers the same device but applies nothing (see
	// reregister_test.go).
	e.call("POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{PublicKey: k.Pub, Hostname: "node3"}, 200, &resp)
	if resp.Device.ID != d.ID || resp.Device.Hostname != "node2" || !resp.Pending {
		t.Fatalf("re-registration with the key: %+v (pending %v)", resp.Device, resp.Pending)
	}
	// The same key in another organization conflicts.
	bob := e.newUser("bob")
	bkey := e.newRegKey(bob, bob.PersonalOrg, api.CreateRegKeyRequest{})
	if st, code := e.errCode("POST", "/api/v1/devices", bkey.Secret, api.RegisterDeviceRequest{PublicKey: k.Pub, Hostname: "x"}); st != 409 || code != api.CodeConflict {
		t.Fatalf("key in another org: %d %s", st, code)
	}
	// Hostnames are unique within an organization, case-insensitively.
	if st, _ := e.errCode("POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{PublicKey: newKey(t).Pub, Hostname: "NODE2"}); st != 409 {
		t.Fatalf("duplicate hostname: %d", st)
	}
	// ...but not across organizations.
	e.register(bkey.Secret, "", "node2", newKey(t), 201)
}

func TestRegKeyRules(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	single := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{SingleUse: true})
	e.register(single.Secret, "", "one", newKey(t), 201)
	if st, _ := e.errCode("POST", "/api/v1/devices", single.Secret, api.RegisterDeviceRequest{PublicKey: newKey(t).Pub, Hostname: "two"}); st != 401 {
		t.Fatalf("used single-use key: %d", st)
	}
	var k api.RegKey
	e.call("GET", "/api/v1/reg-keys/"+single.ID, alice.Token, nil, 200, &k)
	if !k.Used {
		t.Fatal("single-use key not marked used")
	}
	expiring := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{ExpiresInSeconds: 60})
	e.register(expiring.Secret, "", "three", newKey(t), 201)
	e.clock.Advance(61 * time.Second)
	if st, _ := e.errCode("POST", "/api/v1/devices", expiring.Secret, api.RegisterDeviceRequest{PublicKey: newKey(t).Pub, Hostname: "four"}); st != 401 {
		t.Fatalf("expired key: %d", st)
	}
	deleted := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{})
	e.call("DELETE", "/api/v1/reg-keys/"+deleted.ID, alice.Token, nil, 204, nil)
	if st, _ := e.errCode("POST", "/api/v1/devices", deleted.Secret, api.RegisterDeviceRequest{PublicKey: newKey(t).Pub, Hostname: "five"}); st != 401 {
		t.Fatalf("deleted key: %d", st)
	}
	// A wrong secret for a real key ID is 401 too.
	bad := single.Secret[:len(single.Secret)-2] + "xx"
	if st, _ := e.errCode("POST", "/api/v1/devices", bad, api.RegisterDeviceRequest{PublicKey: newKey(t).Pub, Hostname: "six"}); st != 401 {
		t.Fatalf("wrong secret: %d", st)
	}
	var keys []api.RegKey
	e.call("GET", "/api/v1/reg-keys", alice.Token, nil, 200, &keys)
	if len(keys) != 2 {
		t.Fatalf("keys %+v", keys)
	}
	// Expired user tokens are refused.
	var tok api.Token
	e.call("POST", "/api/v1/users/"+alice.ID+"/tokens", adminToken, api.CreateTokenRequest{ExpiresInSeconds: 10}, 201, &tok)
	e.call("GET", "/api/v1/users/me", tok.Secret, nil, 200, nil)
	e.clock.Advance(11 * time.Second)
	if st, _ := e.errCode("GET", "/api/v1/users/me", tok.Secret, nil); st != 401 {
		t.Fatalf("expired user token: %d", st)
	}
}

func TestInvitationLifecycle(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	bob := e.newUser("bob")
	carol := e.newUser("carol")
	acme := e.newOrg(alice, "acme", "")
	invite := func(u string, secs int64) api.Invitation {
		var inv api.Invitation
		e.call("POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: u, ExpiresInSeconds: secs}, 201, &inv)
		return inv
	}
	path := func(inv api.Invitation, action string) string { return "/api/v1/invitations/" + inv.ID + action }

	// Expiry: a pending invitation past its time reads as expired and cannot be accepted.
	inv := invite("bob", 3600)
	if st, _ := e.errCode("POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "bob"}); st != 409 {
		t.Fatalf("second live invitation: %d", st)
	}
	e.clock.Advance(time.Hour)
	var got api.Invitation
	e.call("GET", path(inv, ""), bob.Token, nil, 200, &got)
	if got.Status != api.InvitationExpired {
		t.Fatalf("status %s", got.Status)
	}
	if st, code := e.errCode("POST", path(inv, "/accept"), bob.Token, nil); st != 410 || code != api.CodeGone {
		t.Fatalf("accept expired: %d %s", st, code)
	}
	// An expired invitation no longer blocks a new one.
	inv = invite("bob", 0)
	// Decline, then accepting fails.
	e.call("POST", path(inv, "/decline"), bob.Token, nil, 200, &got)
	if got.Status != api.InvitationDeclined {
		t.Fatalf("status %s", got.Status)
	}
	if st, _ := e.errCode("POST", path(inv, "/accept"), bob.Token, nil); st != 410 {
		t.Fatalf("accept declined: %d", st)
	}
	// Revoke, then accepting fails.
	inv = invite("bob", 0)
	e.call("DELETE", path(inv, ""), alice.Token, nil, 204, nil)
	if st, _ := e.errCode("POST", path(inv, "/accept"), bob.Token, nil); st != 410 {
		t.Fatalf("accept revoked: %d", st)
	}
	if st, _ := e.errCode("DELETE", path(inv, ""), alice.Token, nil); st != 410 {
		t.Fatalf("revoke revoked: %d", st)
	}
	// Accept as owner role; a second accept fails; inviting a member conflicts.
	inv = invite("bob", 0)
	if st, _ := e.errCode("POST", path(inv, "/accept"), carol.Token, nil); st != 404 {
		t.Fatalf("stranger accepts: %d", st)
	}
	if st, _ := e.errCode("POST", path(inv, "/accept"), alice.Token, nil); st != 403 {
		t.Fatalf("owner accepts for invitee: %d", st)
	}
	e.call("POST", path(inv, "/accept"), bob.Token, nil, 200, &got)
	if st, _ := e.errCode("POST", path(inv, "/accept"), bob.Token, nil); st != 410 {
		t.Fatalf("accept used: %d", st)
	}
	if st, _ := e.errCode("POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "bob"}); st != 409 {
		t.Fatalf("invite member: %d", st)
	}
	if st, _ := e.errCode("POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "nobody"}); st != 404 {
		t.Fatalf("invite unknown user: %d", st)
	}
	// An owner-role invitation makes an owner who can invite.
	var inv2 api.Invitation
	e.call("POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "carol", Role: api.RoleOwner}, 201, &inv2)
	e.call("POST", path(inv2, "/accept"), carol.Token, nil, 200, nil)
	e.call("POST", "/api/v1/reg-keys", carol.Token, api.CreateRegKeyRequest{OrganizationID: acme.ID}, 201, nil)
	// Bob (member) may not invite, carol (owner) may not remove the creator.
	if st, _ := e.errCode("POST", "/api/v1/invitations", bob.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "alice"}); st != 403 {
		t.Fatalf("member invites: %d", st)
	}
	if st, _ := e.errCode("DELETE", "/api/v1/organizations/"+acme.ID+"/members/"+alice.ID, carol.Token, nil); st != 403 {
		t.Fatalf("remove creator: %d", st)
	}
	var invs []api.Invitation
	e.call("GET", "/api/v1/invitations", alice.Token, nil, 200, &invs)
	if len(invs) != 5 {
		t.Fatalf("alice sees %d invitations", len(invs))
	}
	count := map[string]int{}
	for _, inv := range invs {
		count[inv.Status]++
	}
	want := map[string]int{api.InvitationExpired: 1, api.InvitationDeclined: 1, api.InvitationRevoked: 1, api.InvitationAccepted: 2}
	if !maps.Equal(count, want) {
		t.Errorf("statuses %v want %v", count, want)
	}
}

func TestIPAMExhaustionAndRelease(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	tiny := e.newOrg(alice, "tiny", "10.9.8.0/30")
	key := e.newRegKey(alice, tiny.ID, api.CreateRegKeyRequest{})
	a := e.register(key.Secret, "", "a", newKey(t), 201)
	b := e.register(key.Secret, "", "b", newKey(t), 201)
	if a.TunnelIPv4 != "10.9.8.1" || b.TunnelIPv4 != "10.9.8.2" {
		t.Fatalf("addresses %s %s", a.TunnelIPv4, b.TunnelIPv4)
	}
	if st, code := e.errCode("POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{PublicKey: newKey(t).Pub, Hostname: "c"}); st != 409 || code != api.CodePoolExhausted {
		t.Fatalf("exhausted: %d %s", st, code)
	}
	// Moving a device into the full organization fails the same way.
	other := e.register(alice.Token, alice.PersonalOrg, "other", newKey(t), 201)
	org := tiny.ID
	if st, code := e.errCode("PATCH", "/api/v1/devices/"+other.ID, alice.Token, api.UpdateDeviceRequest{OrganizationID: &org}); st != 409 || code != api.CodePoolExhausted {
		t.Fatalf("move into full org: %d %s", st, code)
	}
	e.call("DELETE", "/api/v1/devices/"+a.ID, alice.Token, nil, 204, nil)
	c := e.register(key.Secret, "", "c", newKey(t), 201)
	if c.TunnelIPv4 != "10.9.8.1" || c.TunnelIPv6 != a.TunnelIPv6 {
		t.Fatalf("released address not reused: %s %s", c.TunnelIPv4, c.TunnelIPv6)
	}
	// Bad CIDRs.
	for _, cidr := range []string{"10.0.0.1/24", "10.0.0.0/31", "fd00::/64", "nonsense", "10.0.0.0/7"} {
		if st, _ := e.errCode("POST", "/api/v1/organizations", alice.Token, api.CreateOrganizationRequest{Name: e.uniq("o"), IPv4CIDR: cidr}); st != 400 {
			t.Errorf("cidr %q: %d", cidr, st)
		}
	}
}

func TestDeviceMove(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	bob := e.newUser("bob")
	src := e.newOrg(alice, "src", "10.1.0.0/24")
	dst := e.newOrg(alice, "dst", "10.2.0.0/24")
	key := e.newRegKey(alice, src.ID, api.CreateRegKeyRequest{})
	d := e.register(key.Secret, "", "mover", newKey(t), 201)
	peer := e.register(key.Secret, "", "stay", newKey(t), 201)
	dstPeer := e.register(alice.Token, dst.ID, "there", newKey(t), 201)

	srcStream := e.openStream("/api/v1/organizations/"+src.ID+"/events", alice.Token, "")
	defer srcStream.close()
	dstStream := e.openStream("/api/v1/organizations/"+dst.ID+"/events", alice.Token, "")
	defer dstStream.close()
	devStream := e.openStream("/api/v1/devices/"+d.ID+"/events", d.Token, "")
	defer devStream.close()
	for _, s := range []*sse{srcStream, dstStream, devStream} {
		if ev := s.next(); ev.Type != api.EventSync {
			t.Fatalf("first event %s", ev.Type)
		}
	}

	// The device cannot move itself; bob (not the owner) cannot move it.
	org := dst.ID
	if st, _ := e.errCode("PATCH", "/api/v1/devices/"+d.ID, d.Token, api.UpdateDeviceRequest{OrganizationID: &org}); st != 403 {
		t.Fatalf("device moves itself: %d", st)
	}
	if st, _ := e.errCode("PATCH", "/api/v1/devices/"+d.ID, bob.Token, api.UpdateDeviceRequest{OrganizationID: &org}); st != 404 {
		t.Fatalf("stranger moves: %d", st)
	}
	bobOrg := bob.PersonalOrg
	if st, _ := e.errCode("PATCH", "/api/v1/devices/"+d.ID, alice.Token, api.UpdateDeviceRequest{OrganizationID: &bobOrg}); st != 404 {
		t.Fatalf("move into an org the owner is not in: %d", st)
	}
	var moved api.Device
	e.call("PATCH", "/api/v1/devices/"+d.ID, alice.Token, api.UpdateDeviceRequest{OrganizationID: &org}, 200, &moved)
	if moved.OrganizationID != dst.ID || moved.TunnelIPv4 != "10.2.0.2" || !netip.MustParsePrefix(dst.IPv6CIDR).Contains(netip.MustParseAddr(moved.TunnelIPv6)) {
		t.Fatalf("moved %+v", moved)
	}
	if ev := srcStream.next(); ev.Type != api.EventDeviceRemoved || ev.Event.Device.ID != d.ID {
		t.Fatalf("src stream got %s", ev.Type)
	}
	if ev := dstStream.next(); ev.Type != api.EventDeviceAdded || ev.Event.Device.ID != d.ID || ev.Event.Device.TunnelIPv4 != "10.2.0.2" {
		t.Fatalf("dst stream got %s %+v", ev.Type, ev.Event.Device)
	}
	ev := devStream.next()
	if ev.Type != api.EventSync || ev.Event.OrganizationID != dst.ID {
		t.Fatalf("device stream got %s for %s", ev.Type, ev.Event.OrganizationID)
	}
	if got, want := deviceIDs(ev.Event.Devices), sorted(d.ID, dstPeer.ID); !slices.Equal(got, want) {
		t.Fatalf("sync after move %v want %v", got, want)
	}
	// The device stream now follows the new organization.
	e.call("DELETE", "/api/v1/devices/"+dstPeer.ID, alice.Token, nil, 204, nil)
	if ev := devStream.next(); ev.Type != api.EventDeviceRemoved || ev.Event.Device.ID != dstPeer.ID {
		t.Fatalf("device stream got %s", ev.Type)
	}
	// Its token now reads the new peer list, not the old.
	e.call("GET", "/api/v1/organizations/"+dst.ID+"/devices", d.Token, nil, 200, nil)
	if st, _ := e.errCode("GET", "/api/v1/organizations/"+src.ID+"/devices", d.Token, nil); st != 404 {
		t.Fatalf("old peer list: %d", st)
	}
	var srcPeers []api.Device
	e.call("GET", "/api/v1/organizations/"+src.ID+"/devices", alice.Token, nil, 200, &srcPeers)
	if got := deviceIDs(srcPeers); !slices.Equal(got, []string{peer.ID}) {
		t.Fatalf("src peers %v", got)
	}
}
