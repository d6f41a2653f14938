package coordinator

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/internal/sealbox"
	"github.com/nexodus-sdk/nexodus/key"
)

// reregister posts a registration of an existing public key and decodes the answer.
func (e *env) reregister(cred string, req api.RegisterDeviceRequest, want int) api.RegisterDeviceResponse {
	e.t.Helper()
	var resp api.RegisterDeviceResponse
	e.call("POST", "/api/v1/devices", cred, req, want, &resp)
	return resp
}

// newNode makes user alice with a reusable registration key for her personal organization,
// and device "node" registered with it under key k.
func (e *env) newNode() (alice user, key api.RegKey, k wgKey, d device) {
	e.t.Helper()
	alice = e.newUser("alice")
	key = e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{})
	k = newKey(e.t)
	return alice, key, k, e.register(key.Secret, "", "node", k, 201)
}

// requireSameAddresses requires that b is device a with a's tunnel addresses.
func requireSameAddresses(t *testing.T, a, b api.Device) {
	t.Helper()
	require.Equal(t, []string{a.ID, a.TunnelIPv4, a.TunnelIPv6}, []string{b.ID, b.TunnelIPv4, b.TunnelIPv6})
}

// requireSealedTo requires that a stranger's private key cannot open a sealed token.
func requireSealedTo(t *testing.T, sealed []byte) {
	t.Helper()
	stranger, err := key.Generate()
	require.NoError(t, err)
	_, err = sealbox.Open(stranger, sealed)
	require.Error(t, err, "a stranger opened the sealed token")
}

// unchanged is what a re-registration must not change about a device.
func unchanged(d api.Device) api.Device {
	return api.Device{
		ID: d.ID, OrganizationID: d.OrganizationID, OwnerID: d.OwnerID, Hostname: d.Hostname,
		TunnelIPv4: d.TunnelIPv4, TunnelIPv6: d.TunnelIPv6, Endpoints: d.Endpoints,
		ChildPrefixes: d.ChildPrefixes, SymmetricNAT: d.SymmetricNAT, Ephemeral: d.Ephemeral,
	}
}

// TestReRegistrationTakeover is the attack: whoever holds an organization's registration key
// (or is a member, or an owner who is not the device's owner) posts another device's public key
// — peer lists show them — with their own hostname, endpoints and child prefixes. Nothing of
// that may reach the device, and the device keeps working: its token, its event stream.
func TestReRegistrationTakeover(t *testing.T) {
	e := newEnv(t)
	w := e.newWorld()
	before1, before2 := unchanged(e.device(w.alice.Token, w.d1.ID)), unchanged(e.device(w.alice.Token, w.d2.ID))

	org := e.openStream(orgPath(w.acme.ID, "/events"), w.alice.Token, "")
	defer org.close()
	org.next()
	victim := e.openStream(devicePath(w.d2.ID, "/events"), w.d2.Token, "")
	defer victim.close()
	victim.next()

	evil := func(pub string) api.RegisterDeviceRequest {
		return api.RegisterDeviceRequest{
			PublicKey: pub, Hostname: "evil",
			Endpoints:     []api.Endpoint{{Source: api.EndpointReflexive, Address: "198.51.100.66:51820"}},
			ChildPrefixes: []string{"10.0.0.0/8"}, SymmetricNAT: true, Ephemeral: true,
		}
	}
	attacks := []struct {
		who, cred string
		dev       device
		orgID     string
	}{
		{"registration key on bob's device", w.acmeKey.Secret, w.d2, ""},
		{"registration key on alice's device", w.acmeKey.Secret, w.d1, ""},
		{"member bob on alice's device", w.bob.Token, w.d1, w.acme.ID},
		{"owner alice on bob's device", w.alice.Token, w.d2, w.acme.ID},
	}
	for _, a := range attacks {
		for range 3 { // repeating does not help either
			req := evil(a.dev.Key.Pub)
			req.OrganizationID = a.orgID
			resp := e.reregister(a.cred, req, 200)
			assert.True(t, resp.Pending, "%s: answer marked pending", a.who)
			assert.Equal(t, a.dev.ID, resp.Device.ID, a.who)
			assert.NotEqual(t, "evil", resp.Device.Hostname, a.who)
			// The attacker does not hold the private key, so the token is useless to them.
			requireSealedTo(t, resp.SealedToken)
		}
	}

	// Nothing changed, and the devices' tokens still work.
	assert.Equal(t, before1, unchanged(e.device(w.d1.Token, w.d1.ID)), "d1 after the re-registrations")
	assert.Equal(t, before2, unchanged(e.device(w.d2.Token, w.d2.ID)), "d2 after the re-registrations")
	// No event was logged: the next one on both streams is this marker update.
	marker := "marker"
	e.call("PATCH", devicePath(w.d1.ID, ""), w.d1.Token, api.UpdateDeviceRequest{Hostname: &marker}, 200, nil)
	for name, s := range map[string]*sse{"organization stream": org, "victim's stream": victim} {
		ev := s.next()
		for ev.Type == api.EventRelay { // not logged; the world's organizations have relays
			ev = s.next()
		}
		if assert.Equal(t, api.EventDeviceUpdated, ev.Type, name) && assert.NotNil(t, ev.Event.Device, name) {
			assert.Equal(t, marker, ev.Event.Device.Hostname, name)
		}
	}

	// A registration key of another organization cannot even get a pending token, and the
	// answer does not say where the key is registered.
	st, body := e.do("POST", "/api/v1/devices", w.carolKey.Secret, evil(w.d2.Key.Pub))
	var ae api.Error
	require.NoError(t, json.Unmarshal(body, &ae))
	assert.Equal(t, 409, st, "foreign key re-registering d2")
	assert.NotContains(t, ae.Message, "organization")
	assert.Equal(t, before2, unchanged(e.device(w.alice.Token, w.d2.ID)), "d2 after a foreign re-registration")
}

// TestReRegistrationRecovers is the legitimate path: a node whose saved token no longer works
// (here: lost) registers its public key again with the registration key, gets back the same
// device and addresses, and its new token, once used, replaces the old one.
func TestReRegistrationRecovers(t *testing.T) {
	e := newEnv(t)
	_, key, k, d := e.newNode()
	old := e.openStream(devicePath(d.ID, "/events"), d.Token, "")
	defer old.close()
	old.next()

	resp := e.reregister(key.Secret, api.RegisterDeviceRequest{PublicKey: k.Pub, Hostname: "node-2"}, 200)
	require.True(t, resp.Pending)
	requireSameAddresses(t, d.Device, resp.Device)
	assert.Equal(t, "node", resp.Device.Hostname, "re-registration applied the hostname")
	fresh := openWith(t, k.Priv, resp.SealedToken)
	// Until the new token is used, the old one works.
	e.call("GET", devicePath(d.ID, ""), d.Token, nil, 200, nil)

	// A second re-registration replaces the unused pending token.
	resp = e.reregister(key.Secret, api.RegisterDeviceRequest{PublicKey: k.Pub, Hostname: "node-2"}, 200)
	fresher := openWith(t, k.Priv, resp.SealedToken)
	e.fails(401, "", "GET", devicePath(d.ID, ""), fresh, nil)

	// First use: the pending token becomes the device's token; the old one and the stream
	// opened with it stop working.
	var got api.Device
	e.call("GET", devicePath(d.ID, ""), fresher, nil, 200, &got)
	assert.Equal(t, unchanged(d.Device), unchanged(got), "device after recovery")
	old.ended()
	e.fails(401, "", "GET", devicePath(d.ID, ""), d.Token, nil)
	// The node now sets what the re-registration did not apply.
	host := "node-2"
	e.call("PATCH", devicePath(d.ID, ""), fresher, api.UpdateDeviceRequest{Hostname: &host}, 200, &got)
	assert.Equal(t, host, got.Hostname)
	s := e.openStream(devicePath(d.ID, "/events"), fresher, "")
	defer s.close()
	assert.Equal(t, api.EventSync, s.next().Type, "first event of a stream with the promoted token")
}

// TestStreamEndsWhenTokenReplaced: a device's event stream ends when the token it was opened
// with is replaced by the owner's re-registration.
func TestStreamEndsWhenTokenReplaced(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	k := newKey(t)
	d := e.register(alice.Token, alice.PersonalOrg, "node", k, 201)
	s := e.openStream(devicePath(d.ID, "/events"), d.Token, "")
	defer s.close()
	s.next()
	resp := e.reregister(alice.Token, api.RegisterDeviceRequest{OrganizationID: alice.PersonalOrg, PublicKey: k.Pub, Hostname: "node"}, 200)
	require.False(t, resp.Pending, "the owner's re-registration")
	s.ended()
	e.fails(401, "", "GET", devicePath(d.ID, ""), d.Token, nil)
}

// TestRegKeyOfRemovedMember: a registration key stops working while its owner is not a member
// of its organization.
func TestRegKeyOfRemovedMember(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	carol := e.newUser("carol")
	acme := e.newOrg(alice, "acme", "")
	e.invite(alice, carol, acme.ID, api.RoleOwner)
	k := e.newRegKey(carol, acme.ID, api.CreateRegKeyRequest{})
	kept := e.register(k.Secret, "", "kept", newKey(t), 201)
	e.call("DELETE", orgPath(acme.ID, "/members/"+carol.ID), alice.Token, nil, 204, nil)
	e.fails(401, api.CodeUnauthorized, "POST", "/api/v1/devices", k.Secret, api.RegisterDeviceRequest{PublicKey: newKey(t).Pub, Hostname: "orphan"})
	e.fails(401, "", "POST", "/api/v1/devices", k.Secret, api.RegisterDeviceRequest{PublicKey: kept.Key.Pub, Hostname: "kept"})
	assert.Empty(t, e.peers(acme.ID, alice.Token), "devices after carol left")
	// Back in the organization, the key works again.
	e.invite(alice, carol, acme.ID, api.RoleOwner)
	e.register(k.Secret, "", "back", newKey(t), 201)
}

func TestSealedTokenAndReRegistration(t *testing.T) {
	e := newEnv(t)
	alice, key, k, d := e.newNode()
	// The device's owner re-registers it with her user token: the request is applied and the
	// token replaced at once. Another private key cannot open the sealed token.
	resp := e.reregister(alice.Token, api.RegisterDeviceRequest{OrganizationID: alice.PersonalOrg, PublicKey: k.Pub, Hostname: "node2"}, 200)
	require.False(t, resp.Pending, "owner's re-registration")
	require.Equal(t, "node2", resp.Device.Hostname)
	requireSameAddresses(t, d.Device, resp.Device)
	requireSealedTo(t, resp.SealedToken)
	fresh := openWith(t, k.Priv, resp.SealedToken)
	require.NotEqual(t, d.Token, fresh, "re-registration returned the same token")
	// The old token is replaced by the fresh one.
	e.fails(401, "", "GET", devicePath(d.ID, ""), d.Token, nil)
	e.call("GET", devicePath(d.ID, ""), fresh, nil, 200, nil)
	// The same with the registration key answers the same device but applies nothing (see
	// reregister_test.go).
	resp = e.reregister(key.Secret, api.RegisterDeviceRequest{PublicKey: k.Pub, Hostname: "node3"}, 200)
	require.True(t, resp.Pending, "re-registration with the key")
	require.Equal(t, d.ID, resp.Device.ID)
	require.Equal(t, "node2", resp.Device.Hostname)
	// The same key in another organization conflicts.
	bob := e.newUser("bob")
	bkey := e.newRegKey(bob, bob.PersonalOrg, api.CreateRegKeyRequest{})
	e.fails(409, api.CodeConflict, "POST", "/api/v1/devices", bkey.Secret, api.RegisterDeviceRequest{PublicKey: k.Pub, Hostname: "x"})
	// Hostnames are unique within an organization, case-insensitively: another key's device
	// gets a suffix while the holder keeps its name...
	other := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{})
	second := e.register(other.Secret, "", "NODE2", newKey(t), 201)
	require.Equal(t, "NODE2-1", second.Hostname)
	// ...the holder's own key, with the holder offline, replaces it (a node that lost its
	// state dir comes back under its name)...
	back := e.register(key.Secret, "", "node2", newKey(t), 201)
	require.Equal(t, "node2", back.Hostname)
	require.NotEqual(t, d.ID, back.ID)
	e.fails(401, "", "GET", devicePath(d.ID, ""), fresh, nil)
	// ...and the name is free in another organization.
	e.register(bkey.Secret, "", "node2", newKey(t), 201)
}
