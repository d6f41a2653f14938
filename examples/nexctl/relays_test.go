package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
)

// TestCLIRelays sets, shows and clears an organization's relays against the real coordinator;
// the secret comes from a file or the environment and is never printed.
func TestCLIRelays(t *testing.T) {
	admin := adminCLI(t)
	var alice api.CreateUserResponse
	admin.json(&alice, "user", "create", "alice")
	admin.ok("user", "create", "bob")
	a, b := admin.user("alice"), admin.user("bob")
	var acme api.Organization
	a.json(&acme, "org", "create", "acme")
	var inv api.Invitation
	a.json(&inv, "invite", "create", "bob", "--org", "acme")
	b.ok("invite", "accept", inv.ID)

	const secret = "cli-test-relay-secret-0123456789"
	file := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(file, []byte(secret+"\n"), 0o600))
	turn := "turn:198.51.100.1:3478?transport=udp,turns:relay.example.com:5349?transport=tcp"

	a.fails(2, "--turn is required", "relays", "set", "--org", "acme", "--secret-file", file)
	a.fails(2, "no secret", "relays", "set", "--org", "acme", "--turn", turn)
	a.fails(1, "nexctl: ", "relays", "get", "--org", "acme") // none yet
	a.fails(1, "transport", "relays", "set", "--org", "acme", "--turn", "turn:198.51.100.1:3478", "--secret-file", file)
	b.fails(1, "owner", "relays", "set", "--org", "acme", "--turn", turn, "--secret-file", file)

	var set api.OrgRelays
	a.json(&set, "relays", "set", "--org", "acme", "--turn", turn, "--stun", "198.51.100.1:3478", "--secret-file", file)
	require.Equal(t, acme.ID, set.OrganizationID)
	require.Len(t, set.TURN, 2)
	require.Equal(t, []string{"198.51.100.1:3478"}, set.STUN)
	// A member reads them; the table shows the servers and never the secret.
	out := b.ok("relays", "get", "--org", "acme")
	assert.Contains(t, out, "turns:relay.example.com:5349?transport=tcp")
	assert.NotContains(t, out, secret)
	var got api.OrgRelays
	b.json(&got, "relay", "get", "--org", acme.ID) // alias, by ID
	assert.Equal(t, set.TURN, got.TURN)
	// The secret may come from the environment instead (here for the personal organization).
	assert.Contains(t, a.with("NEXODUS_RELAY_SECRET", secret).ok("relays", "set", "--turn", "turn:198.51.100.2:3478?transport=tcp"), alice.PersonalOrganizationID)

	b.fails(1, "owner", "relays", "clear", "--org", "acme")
	assert.Contains(t, a.ok("relays", "clear", "--org", "acme"), "cleared")
	a.fails(1, "no relays", "relays", "clear", "--org", "acme")
	assert.Contains(t, a.ok("help"), "relays set")
}
