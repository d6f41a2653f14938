package coordinator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
	"github.com/nexodus-sdk/nexodus/internal/turncred"
)

var relaySecret = []byte("coordinator-relay-secret-0123456789")

func withRelay(c *Config) {
	c.STUNServers = []string{"198.51.100.10:3478", "198.51.100.10:3479"}
	c.TURNServers = []string{"turn:198.51.100.10:3478?transport=udp", "turn:198.51.100.10:3478?transport=tcp"}
	c.RelaySecret = relaySecret
	c.RelayCredentialTTL = 2 * time.Hour
}

func relayPath(id string) string { return "/api/v1/devices/" + id + "/relay" }

func TestDeviceRelayConfig(t *testing.T) {
	e := newEnv(t, withRelay)
	alice := e.newUser("alice")
	k := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{})
	d1 := e.register(k.Secret, "", "d1", newKey(t), 201)
	d2 := e.register(k.Secret, "", "d2", newKey(t), 201)

	var rc api.RelayConfig
	e.call("GET", relayPath(d1.ID), d1.Token, nil, 200, &rc)
	if strings.Join(rc.STUN, ",") != "198.51.100.10:3478,198.51.100.10:3479" ||
		strings.Join(rc.TURN, ",") != "turn:198.51.100.10:3478?transport=udp,turn:198.51.100.10:3478?transport=tcp" {
		t.Fatalf("servers %+v", rc)
	}
	if want := e.clock.Now().Add(2 * time.Hour); !rc.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt %v, want %v", rc.ExpiresAt, want)
	}
	id, err := turncred.Verify(relaySecret, rc.Username, rc.Password, e.clock.Now())
	if err != nil || id != d1.ID {
		t.Fatalf("credentials verify as %q, %v", id, err)
	}
	exp, _, _ := turncred.Parse(rc.Username)
	if !exp.Equal(rc.ExpiresAt) {
		t.Errorf("username expiry %v, ExpiresAt %v", exp, rc.ExpiresAt)
	}
	if _, err := turncred.Verify(relaySecret, rc.Username, rc.Password, e.clock.Now().Add(2*time.Hour+time.Second)); !errors.Is(err, turncred.ErrExpired) {
		t.Errorf("after the TTL: %v, want ErrExpired", err)
	}

	// Fresh credentials on every call, following the clock.
	e.clock.Advance(time.Hour)
	var rc2 api.RelayConfig
	e.call("GET", relayPath(d1.ID), d1.Token, nil, 200, &rc2)
	if !rc2.ExpiresAt.After(rc.ExpiresAt) || rc2.Username == rc.Username {
		t.Errorf("second fetch %+v, first %+v", rc2, rc)
	}

	// Nobody but the device itself.
	for _, tc := range []struct {
		name, token string
		status      int
		code        string
	}{
		{"user token (owner)", alice.Token, 403, api.CodeForbidden},
		{"admin token", adminToken, 403, api.CodeForbidden},
		{"registration key", k.Secret, 403, api.CodeForbidden},
		{"a peer device", d2.Token, 403, api.CodeForbidden},
		{"no token", "", 401, api.CodeUnauthorized},
		{"forged device token", d1.Token[:len(d1.Token)-2] + "xx", 401, api.CodeUnauthorized},
	} {
		if st, code := e.errCode("GET", relayPath(d1.ID), tc.token, nil); st != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, st, code, tc.status, tc.code)
		}
	}
	// A device of another organization: 404, as if d1 did not exist.
	bob := e.newUser("bob")
	kb := e.newRegKey(bob, bob.PersonalOrg, api.CreateRegKeyRequest{})
	db := e.register(kb.Secret, "", "db", newKey(t), 201)
	if st, code := e.errCode("GET", relayPath(d1.ID), db.Token, nil); st != 404 || code != api.CodeNotFound {
		t.Errorf("other organization's device: %d %s", st, code)
	}
	if st, _ := e.errCode("GET", relayPath("not-an-id"), d1.Token, nil); st != 400 {
		t.Errorf("malformed id: %d", st)
	}
	if st, _ := e.errCode("POST", relayPath(d1.ID), d1.Token, nil); st != 405 {
		t.Errorf("POST: %d", st)
	}

	// A deleted device's token no longer works.
	e.call("DELETE", "/api/v1/devices/"+d2.ID, alice.Token, nil, 204, nil)
	if st, code := e.errCode("GET", relayPath(d2.ID), d2.Token, nil); st != 401 || code != api.CodeUnauthorized {
		t.Errorf("deleted device: %d %s, want 401", st, code)
	}
}

// TestRelayConfigRemovedFromOrganization: a member's device goes when the member is removed
// from the organization, and with it the device's access to relay credentials.
func TestRelayConfigRemovedFromOrganization(t *testing.T) {
	e := newEnv(t, withRelay)
	alice, bob := e.newUser("alice"), e.newUser("bob")
	acme := e.newOrg(alice, "acme", "")
	var inv api.Invitation
	e.call("POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "bob"}, 201, &inv)
	e.call("POST", "/api/v1/invitations/"+inv.ID+"/accept", bob.Token, nil, 200, &inv)
	d := e.register(bob.Token, acme.ID, "bobs-pc", newKey(t), 201)
	e.call("GET", relayPath(d.ID), d.Token, nil, 200, nil)

	e.call("DELETE", "/api/v1/organizations/"+acme.ID+"/members/"+bob.ID, alice.Token, nil, 204, nil)
	if st, code := e.errCode("GET", relayPath(d.ID), d.Token, nil); st != 401 || code != api.CodeUnauthorized {
		t.Errorf("after removal: %d %s, want 401", st, code)
	}
}

// TestRelayConfigMovedDevice: a device its owner moves to another organization keeps its
// identity and keeps getting credentials for it.
func TestRelayConfigMovedDevice(t *testing.T) {
	e := newEnv(t, withRelay)
	alice := e.newUser("alice")
	acme := e.newOrg(alice, "acme", "")
	d := e.register(alice.Token, alice.PersonalOrg, "laptop", newKey(t), 201)
	org := acme.ID
	e.call("PATCH", "/api/v1/devices/"+d.ID, alice.Token, api.UpdateDeviceRequest{OrganizationID: &org}, 200, nil)
	var rc api.RelayConfig
	e.call("GET", relayPath(d.ID), d.Token, nil, 200, &rc)
	if id, err := turncred.Verify(relaySecret, rc.Username, rc.Password, e.clock.Now()); err != nil || id != d.ID {
		t.Errorf("moved device's credentials: %q %v", id, err)
	}
}

func TestRelayConfigWithoutSecret(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.STUNServers = []string{"stun.example.com:3478"} })
	alice := e.newUser("alice")
	d := e.register(alice.Token, alice.PersonalOrg, "laptop", newKey(t), 201)
	var rc api.RelayConfig
	e.call("GET", relayPath(d.ID), d.Token, nil, 200, &rc)
	if len(rc.STUN) != 1 || rc.STUN[0] != "stun.example.com:3478" || rc.TURN != nil || rc.Username != "" || rc.Password != "" || !rc.ExpiresAt.IsZero() {
		t.Errorf("without a secret: %+v", rc)
	}
}

func TestRelayConfigValidation(t *testing.T) {
	st, err := sqlite.Open(context.Background(), t.TempDir()+"/c.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for name, f := range map[string]func(*Config){
		"turn without secret": func(c *Config) { c.TURNServers = []string{"turn:1.2.3.4:3478"} },
		"bad turn url":        func(c *Config) { c.RelaySecret = relaySecret; c.TURNServers = []string{"1.2.3.4:3478"} },
		"bad stun server":     func(c *Config) { c.STUNServers = []string{"1.2.3.4"} },
		"negative ttl":        func(c *Config) { c.RelayCredentialTTL = -time.Second },
	} {
		cfg := Config{Store: st}
		f(&cfg)
		if s, err := New(context.Background(), cfg); err == nil {
			_ = s.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}
