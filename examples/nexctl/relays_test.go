package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nexodus-sdk/nexodus/api"
)

// TestCLIRelays sets, shows and clears an organization's relays against the real coordinator;
// the secret comes from a file or the environment and is never printed.
func TestCLIRelays(t *testing.T) {
	url := startCoordinator(t)
	admin := cli{t: t, env: map[string]string{"NEXODUS_URL": url, "NEXODUS_TOKEN": adminToken}}
	var alice, bob api.CreateUserResponse
	admin.json(&alice, "user", "create", "alice")
	admin.json(&bob, "user", "create", "bob")
	var aliceTok, bobTok api.Token
	admin.json(&aliceTok, "user", "token", "alice")
	admin.json(&bobTok, "user", "token", "bob")
	a, b := admin.as(aliceTok.Secret), admin.as(bobTok.Secret)
	var acme api.Organization
	a.json(&acme, "org", "create", "acme")
	var inv api.Invitation
	a.json(&inv, "invite", "create", "bob", "--org", "acme")
	b.ok("invite", "accept", inv.ID)

	const secret = "cli-test-relay-secret-0123456789"
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	turn := "turn:198.51.100.1:3478?transport=udp,turns:relay.example.com:5349?transport=tcp"

	a.fails(2, "--turn is required", "relays", "set", "--org", "acme", "--secret-file", file)
	a.fails(2, "no secret", "relays", "set", "--org", "acme", "--turn", turn)
	a.fails(1, "nexctl: ", "relays", "get", "--org", "acme") // none yet
	a.fails(1, "transport", "relays", "set", "--org", "acme", "--turn", "turn:198.51.100.1:3478", "--secret-file", file)
	b.fails(1, "owner", "relays", "set", "--org", "acme", "--turn", turn, "--secret-file", file)

	var set api.OrgRelays
	a.json(&set, "relays", "set", "--org", "acme", "--turn", turn, "--stun", "198.51.100.1:3478", "--secret-file", file)
	if set.OrganizationID != acme.ID || len(set.TURN) != 2 || !slices.Equal(set.STUN, []string{"198.51.100.1:3478"}) {
		t.Fatalf("relays set: %+v", set)
	}
	// A member reads them; the table shows the servers and never the secret.
	out := b.ok("relays", "get", "--org", "acme")
	if !strings.Contains(out, "turns:relay.example.com:5349?transport=tcp") || strings.Contains(out, secret) {
		t.Errorf("relays get table:\n%s", out)
	}
	var got api.OrgRelays
	b.json(&got, "relay", "get", "--org", acme.ID) // alias, by ID
	if !slices.Equal(got.TURN, set.TURN) {
		t.Errorf("relays get: %+v", got)
	}
	// The secret may come from the environment instead (here for the personal organization).
	env := a.as(aliceTok.Secret)
	env.env["NEXODUS_RELAY_SECRET"] = secret
	if out := env.ok("relays", "set", "--turn", "turn:198.51.100.2:3478?transport=tcp"); !strings.Contains(out, alice.PersonalOrganizationID) {
		t.Errorf("relays set from the environment:\n%s", out)
	}

	b.fails(1, "owner", "relays", "clear", "--org", "acme")
	if out := a.ok("relays", "clear", "--org", "acme"); !strings.Contains(out, "cleared") {
		t.Errorf("relays clear:\n%s", out)
	}
	a.fails(1, "no relays", "relays", "clear", "--org", "acme")
	if code, out, _ := a.run("help"); code != 0 || !strings.Contains(out, "relays set") {
		t.Errorf("help lacks relays: %s", out)
	}
}
