package coordinator

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/nexodus-sdk/nexodus/api"
)

// reregister posts a registration of an existing public key and decodes the answer.
func (e *env) reregister(cred string, req api.RegisterDeviceRequest, want int) api.RegisterDeviceResponse {
	e.t.Helper()
	var resp api.RegisterDeviceResponse
	e.call("POST", "/api/v1/devices", cred, req, want, &resp)
	return resp
}

// sameDevice compares what a re-registration must not change.
func sameDevice(a, b api.Device) bool {
	return a.ID == b.ID && a.OrganizationID == b.OrganizationID && a.OwnerID == b.OwnerID && a.Hostname == b.Hostname &&
		a.TunnelIPv4 == b.TunnelIPv4 && a.TunnelIPv6 == b.TunnelIPv6 && slices.Equal(a.Endpoints, b.Endpoints) &&
		slices.Equal(a.ChildPrefixes, b.ChildPrefixes) && a.SymmetricNAT == b.SymmetricNAT && a.Ephemeral == b.Ephemeral
}

// TestReRegistrationTakeover is the attack: whoever holds an organization's registration key
// (or is a member, or an owner who is not the device's owner) posts another device's public key
// — peer lists show them — with their own hostname, endpoints and child prefixes. Nothing of
// that may reach the device, and the device keeps working: its token, its event stream.
func TestReRegistrationTakeover(t *testing.T) {
	e := newEnv(t)
	w := e.newWorld()
	var before struct{ d1, d2 api.Device }
	e.call("GET", "/api/v1/devices/"+w.d1.ID, w.alice.Token, nil, 200, &before.d1)
	e.call("GET", "/api/v1/devices/"+w.d2.ID, w.alice.Token, nil, 200, &before.d2)

	org := e.openStream("/api/v1/organizations/"+w.acme.ID+"/events", w.alice.Token, "")
	defer org.close()
	org.next()
	victim := e.openStream("/api/v1/devices/"+w.d2.ID+"/events", w.d2.Token, "")
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
			if !resp.Pending {
				t.Errorf("%s: answer not marked pending", a.who)
			}
			if resp.Device.ID != a.dev.ID || resp.Device.Hostname == "evil" {
				t.Errorf("%s: answered %+v", a.who, resp.Device)
			}
			// The attacker does not hold the private key, so the token is useless to them.
			if _, err := openWith(newKey(t).Priv, resp.SealedToken); err == nil {
				t.Errorf("%s: sealed token opened without the private key", a.who)
			}
		}
	}

	// Nothing changed, and the devices' tokens still work.
	var after api.Device
	e.call("GET", "/api/v1/devices/"+w.d1.ID, w.d1.Token, nil, 200, &after)
	if !sameDevice(after, before.d1) {
		t.Errorf("d1 changed by re-registrations:\n%+v\nwas\n%+v", after, before.d1)
	}
	e.call("GET", "/api/v1/devices/"+w.d2.ID, w.d2.Token, nil, 200, &after)
	if !sameDevice(after, before.d2) {
		t.Errorf("d2 changed by re-registrations:\n%+v\nwas\n%+v", after, before.d2)
	}
	// No event was logged: the next one on both streams is this marker update.
	marker := "marker"
	e.call("PATCH", "/api/v1/devices/"+w.d1.ID, w.d1.Token, api.UpdateDeviceRequest{Hostname: &marker}, 200, nil)
	for name, s := range map[string]*sse{"organization stream": org, "victim's stream": victim} {
		ev := s.next()
		for ev.Type == api.EventRelay { // not logged; the world's organizations have relays
			ev = s.next()
		}
		if ev.Type != api.EventDeviceUpdated || ev.Event.Device == nil || ev.Event.Device.Hostname != marker {
			t.Errorf("%s after the attacks: %s %+v, want the marker update", name, ev.Type, ev.Event.Device)
		}
	}

	// A registration key of another organization cannot even get a pending token, and the
	// answer does not say where the key is registered.
	st, body := e.do("POST", "/api/v1/devices", w.carolKey.Secret, evil(w.d2.Key.Pub))
	var ae api.Error
	_ = json.Unmarshal(body, &ae)
	if st != 409 || strings.Contains(ae.Message, "organization") {
		t.Errorf("foreign key re-registering d2: %d %q", st, ae.Message)
	}
	e.call("GET", "/api/v1/devices/"+w.d2.ID, w.d2.Token, nil, 200, &after)
	if !sameDevice(after, before.d2) {
		t.Errorf("d2 changed by a foreign re-registration: %+v", after)
	}
}

// TestReRegistrationRecovers is the legitimate path: a node whose saved token no longer works
// (here: lost) registers its public key again with the registration key, gets back the same
// device and addresses, and its new token, once used, replaces the old one.
func TestReRegistrationRecovers(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	key := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{})
	k := newKey(t)
	d := e.register(key.Secret, "", "node", k, 201)
	old := e.openStream("/api/v1/devices/"+d.ID+"/events", d.Token, "")
	defer old.close()
	old.next()

	resp := e.reregister(key.Secret, api.RegisterDeviceRequest{PublicKey: k.Pub, Hostname: "node-2"}, 200)
	if !resp.Pending || resp.Device.ID != d.ID || resp.Device.TunnelIPv4 != d.TunnelIPv4 || resp.Device.TunnelIPv6 != d.TunnelIPv6 {
		t.Fatalf("re-registration: pending %v, %+v; want the same device %+v", resp.Pending, resp.Device, d.Device)
	}
	if resp.Device.Hostname != "node" {
		t.Errorf("re-registration applied the hostname: %q", resp.Device.Hostname)
	}
	fresh, err := openWith(k.Priv, resp.SealedToken)
	if err != nil {
		t.Fatal(err)
	}
	// Until the new token is used, the old one works.
	e.call("GET", "/api/v1/devices/"+d.ID, d.Token, nil, 200, nil)

	// A second re-registration replaces the unused pending token.
	resp = e.reregister(key.Secret, api.RegisterDeviceRequest{PublicKey: k.Pub, Hostname: "node-2"}, 200)
	fresher, err := openWith(k.Priv, resp.SealedToken)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := e.errCode("GET", "/api/v1/devices/"+d.ID, fresh, nil); st != 401 {
		t.Fatalf("superseded pending token: %d, want 401", st)
	}

	// First use: the pending token becomes the device's token; the old one and the stream
	// opened with it stop working.
	var got api.Device
	e.call("GET", "/api/v1/devices/"+d.ID, fresher, nil, 200, &got)
	if !sameDevice(got, d.Device) {
		t.Errorf("device after recovery %+v, want %+v", got, d.Device)
	}
	old.ended()
	if st, _ := e.errCode("GET", "/api/v1/devices/"+d.ID, d.Token, nil); st != 401 {
		t.Fatalf("old token after the pending one was used: %d, want 401", st)
	}
	// The node now sets what the re-registration did not apply.
	host := "node-2"
	e.call("PATCH", "/api/v1/devices/"+d.ID, fresher, api.UpdateDeviceRequest{Hostname: &host}, 200, &got)
	if got.Hostname != host {
		t.Errorf("hostname after PATCH: %q", got.Hostname)
	}
	s := e.openStream("/api/v1/devices/"+d.ID+"/events", fresher, "")
	defer s.close()
	if ev := s.next(); ev.Type != api.EventSync {
		t.Errorf("stream with the promoted token began with %s", ev.Type)
	}
}

// TestStreamEndsWhenTokenReplaced: a device's event stream ends when the token it was opened
// with is replaced by the owner's re-registration.
func TestStreamEndsWhenTokenReplaced(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	k := newKey(t)
	d := e.register(alice.Token, alice.PersonalOrg, "node", k, 201)
	s := e.openStream("/api/v1/devices/"+d.ID+"/events", d.Token, "")
	defer s.close()
	s.next()
	resp := e.reregister(alice.Token, api.RegisterDeviceRequest{OrganizationID: alice.PersonalOrg, PublicKey: k.Pub, Hostname: "node"}, 200)
	if resp.Pending {
		t.Fatal("the owner's re-registration is pending")
	}
	s.ended()
	if st, _ := e.errCode("GET", "/api/v1/devices/"+d.ID, d.Token, nil); st != 401 {
		t.Fatalf("replaced token: %d", st)
	}
}

// TestRegKeyOfRemovedMember: a registration key stops working while its owner is not a member
// of its organization.
func TestRegKeyOfRemovedMember(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	carol := e.newUser("carol")
	acme := e.newOrg(alice, "acme", "")
	invite := func() {
		var inv api.Invitation
		e.call("POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "carol", Role: api.RoleOwner}, 201, &inv)
		e.call("POST", "/api/v1/invitations/"+inv.ID+"/accept", carol.Token, nil, 200, nil)
	}
	invite()
	k := e.newRegKey(carol, acme.ID, api.CreateRegKeyRequest{})
	kept := e.register(k.Secret, "", "kept", newKey(t), 201)
	e.call("DELETE", "/api/v1/organizations/"+acme.ID+"/members/"+carol.ID, alice.Token, nil, 204, nil)
	if st, code := e.errCode("POST", "/api/v1/devices", k.Secret, api.RegisterDeviceRequest{PublicKey: newKey(t).Pub, Hostname: "orphan"}); st != 401 || code != api.CodeUnauthorized {
		t.Fatalf("key of a removed member registers: %d %s", st, code)
	}
	if st, _ := e.errCode("POST", "/api/v1/devices", k.Secret, api.RegisterDeviceRequest{PublicKey: kept.Key.Pub, Hostname: "kept"}); st != 401 {
		t.Fatalf("key of a removed member re-registers: %d", st)
	}
	var devs []api.Device
	e.call("GET", "/api/v1/organizations/"+acme.ID+"/devices", alice.Token, nil, 200, &devs)
	if len(devs) != 0 {
		t.Fatalf("devices after carol left: %+v", devs)
	}
	// Back in the organization, the key works again.
	invite()
	e.register(k.Secret, "", "back", newKey(t), 201)
}
