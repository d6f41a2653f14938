package coordinator

import (
	"slices"
	"strconv"
	"testing"

	"github.com/nexodus-sdk/nexodus/api"
)

// TestRestartKeepsState closes the coordinator and its store, reopens the same SQLite file and
// checks that users, organizations, members, invitations, keys, devices, tokens and the event
// log survived.
func TestRestartKeepsState(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	bob := e.newUser("bob")
	acme := e.newOrg(alice, "acme", "10.20.0.0/24")
	var inv api.Invitation
	e.call("POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "bob"}, 201, &inv)
	key := e.newRegKey(alice, acme.ID, api.CreateRegKeyRequest{Description: "fleet"})
	single := e.newRegKey(alice, acme.ID, api.CreateRegKeyRequest{SingleUse: true})
	eph := e.newRegKey(alice, acme.ID, api.CreateRegKeyRequest{Ephemeral: true})
	d1 := e.register(key.Secret, "", "one", newKey(t), 201)
	d2 := e.register(single.Secret, "", "two", newKey(t), 201)
	s := e.openStream("/api/v1/organizations/"+acme.ID+"/events", alice.Token, "")
	sync := s.next()
	s.close()

	var before struct {
		users   []api.User
		orgs    []api.Organization
		devices []api.Device
		keys    []api.RegKey
		invs    []api.Invitation
	}
	e.call("GET", "/api/v1/users", adminToken, nil, 200, &before.users)
	e.call("GET", "/api/v1/organizations", alice.Token, nil, 200, &before.orgs)
	e.call("GET", "/api/v1/devices", alice.Token, nil, 200, &before.devices)
	e.call("GET", "/api/v1/reg-keys", alice.Token, nil, 200, &before.keys)
	e.call("GET", "/api/v1/invitations", alice.Token, nil, 200, &before.invs)

	e.restart()

	var users []api.User
	e.call("GET", "/api/v1/users", adminToken, nil, 200, &users)
	if !slices.EqualFunc(users, before.users, func(a, b api.User) bool {
		return a.ID == b.ID && a.Username == b.Username && a.CreatedAt.Equal(b.CreatedAt)
	}) {
		t.Fatalf("users %+v want %+v", users, before.users)
	}
	var orgs []api.Organization
	e.call("GET", "/api/v1/organizations", alice.Token, nil, 200, &orgs)
	if !slices.EqualFunc(orgs, before.orgs, func(a, b api.Organization) bool {
		return a.ID == b.ID && a.Name == b.Name && a.IPv4CIDR == b.IPv4CIDR && a.IPv6CIDR == b.IPv6CIDR && a.OwnerID == b.OwnerID
	}) {
		t.Fatalf("orgs %+v want %+v", orgs, before.orgs)
	}
	var devices []api.Device
	e.call("GET", "/api/v1/devices", alice.Token, nil, 200, &devices)
	if !slices.EqualFunc(devices, before.devices, func(a, b api.Device) bool {
		return a.ID == b.ID && a.PublicKey == b.PublicKey && a.TunnelIPv4 == b.TunnelIPv4 && a.TunnelIPv6 == b.TunnelIPv6 &&
			a.Hostname == b.Hostname && slices.Equal(a.Endpoints, b.Endpoints)
	}) {
		t.Fatalf("devices %+v want %+v", devices, before.devices)
	}
	var keys []api.RegKey
	e.call("GET", "/api/v1/reg-keys", alice.Token, nil, 200, &keys)
	if len(keys) != 3 || !slices.EqualFunc(keys, before.keys, func(a, b api.RegKey) bool {
		return a.ID == b.ID && a.Used == b.Used && a.SingleUse == b.SingleUse && a.Ephemeral == b.Ephemeral && a.Description == b.Description
	}) {
		t.Fatalf("keys %+v want %+v", keys, before.keys)
	}
	var invs []api.Invitation
	e.call("GET", "/api/v1/invitations", alice.Token, nil, 200, &invs)
	if len(invs) != 1 || invs[0].ID != inv.ID || invs[0].Status != api.InvitationPending {
		t.Fatalf("invitations %+v", invs)
	}

	// Credentials still work: user tokens, device tokens, the reusable key; the used
	// single-use key stays used.
	e.call("GET", "/api/v1/users/me", bob.Token, nil, 200, nil)
	e.call("GET", "/api/v1/devices/"+d1.ID, d1.Token, nil, 200, nil)
	e.call("GET", "/api/v1/organizations/"+acme.ID+"/devices", d2.Token, nil, 200, nil)
	d3 := e.register(key.Secret, "", "three", newKey(t), 201)
	if d3.TunnelIPv4 != "10.20.0.3" {
		t.Fatalf("address after restart %s", d3.TunnelIPv4)
	}
	if st, _ := e.errCode("POST", "/api/v1/devices", single.Secret, api.RegisterDeviceRequest{PublicKey: newKey(t).Pub, Hostname: "four"}); st != 401 {
		t.Fatalf("used key after restart: %d", st)
	}
	e.register(eph.Secret, "", "five", newKey(t), 201)
	// Re-registering after restart keeps the device and its addresses; its pending token
	// survives another restart and, used, updates the device.
	again := e.register(key.Secret, "", "one", d1.Key, 200)
	if again.ID != d1.ID || again.TunnelIPv4 != d1.TunnelIPv4 || again.TunnelIPv6 != d1.TunnelIPv6 {
		t.Fatalf("re-registration after restart: %+v", again.Device)
	}
	e.restart()
	renamed := "one-again"
	e.call("PATCH", "/api/v1/devices/"+d1.ID, again.Token, api.UpdateDeviceRequest{Hostname: &renamed}, 200, nil)
	if st, _ := e.errCode("GET", "/api/v1/devices/"+d1.ID, d1.Token, nil); st != 401 {
		t.Fatalf("token replaced by the pending one after restart: %d", st)
	}
	// The invitation can be accepted after the restart.
	e.call("POST", "/api/v1/invitations/"+inv.ID+"/accept", bob.Token, nil, 200, nil)
	// The event log survived: resuming from before the restart replays what followed.
	s = e.openStream("/api/v1/organizations/"+acme.ID+"/events", alice.Token, strconv.FormatInt(sync.Event.Revision, 10))
	defer s.close()
	expect(t, s, sync.Event.Revision, evWant{api.EventDeviceAdded, d3.ID}, evWant{api.EventDeviceAdded, ""}, evWant{api.EventDeviceUpdated, d1.ID})
}
