package coordinator

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

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
	s := e.openStream(orgPath(acme.ID, "/events"), alice.Token, "")
	sync := s.next()
	s.close()

	// Everything reads back the same, to the byte, from a new coordinator on the same file.
	lists := func() map[string]string {
		out := map[string]string{}
		for path, token := range map[string]string{
			"/api/v1/users": adminToken, "/api/v1/organizations": alice.Token, "/api/v1/devices": alice.Token,
			"/api/v1/reg-keys": alice.Token, "/api/v1/invitations": alice.Token, orgPath(acme.ID, "/members"): alice.Token,
		} {
			st, body := e.do("GET", path, token, nil)
			require.Equal(t, 200, st, path)
			out[path] = string(body)
		}
		return out
	}
	before := lists()
	e.restart()
	require.Equal(t, before, lists())

	// Credentials still work: user tokens, device tokens, the reusable key; the used
	// single-use key stays used.
	e.call("GET", "/api/v1/users/me", bob.Token, nil, 200, nil)
	e.call("GET", "/api/v1/devices/"+d1.ID, d1.Token, nil, 200, nil)
	e.call("GET", "/api/v1/organizations/"+acme.ID+"/devices", d2.Token, nil, 200, nil)
	d3 := e.register(key.Secret, "", "three", newKey(t), 201)
	require.Equal(t, "10.20.0.3", d3.TunnelIPv4, "address after restart")
	e.fails(401, "", "POST", "/api/v1/devices", single.Secret, api.RegisterDeviceRequest{PublicKey: newKey(t).Pub, Hostname: "four"})
	e.register(eph.Secret, "", "five", newKey(t), 201)
	// Re-registering after restart keeps the device and its addresses; its pending token
	// survives another restart and, used, updates the device.
	again := e.register(key.Secret, "", "one", d1.Key, 200)
	requireSameAddresses(t, d1.Device, again.Device)
	e.restart()
	renamed := "one-again"
	e.call("PATCH", "/api/v1/devices/"+d1.ID, again.Token, api.UpdateDeviceRequest{Hostname: &renamed}, 200, nil)
	e.fails(401, "", "GET", "/api/v1/devices/"+d1.ID, d1.Token, nil)
	// The invitation can be accepted after the restart.
	e.call("POST", "/api/v1/invitations/"+inv.ID+"/accept", bob.Token, nil, 200, nil)
	// The event log survived: resuming from before the restart replays what followed.
	s = e.openStream(orgPath(acme.ID, "/events"), alice.Token, strconv.FormatInt(sync.Event.Revision, 10))
	defer s.close()
	expect(t, s, sync.Event.Revision, evWant{api.EventDeviceAdded, d3.ID}, evWant{api.EventDeviceAdded, ""}, evWant{api.EventDeviceUpdated, d1.ID})
}
