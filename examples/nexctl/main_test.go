package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// cli runs nexctl with an environment and returns its exit code, stdout and stderr.
type cli struct {
	t   *testing.T
	env map[string]string
}

func (c cli) run(args ...string) (int, string, string) {
	c.t.Helper()
	var out, errb bytes.Buffer
	code := run(c.t.Context(), args, &out, &errb, func(k string) string { return c.env[k] })
	return code, out.String(), errb.String()
}

// ok runs a command that must succeed.
func (c cli) ok(args ...string) string {
	c.t.Helper()
	code, out, errs := c.run(args...)
	require.Zero(c.t, code, "nexctl %s: exit code\nstdout: %s\nstderr: %s", strings.Join(args, " "), out, errs)
	return out
}

// json runs a command with -o json that must succeed and decodes its output into v.
func (c cli) json(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append([]string{"-o", "json"}, args...)...)
	require.NoError(c.t, json.Unmarshal([]byte(out), v), "nexctl %s: output %q", strings.Join(args, " "), out)
}

// fails runs a command that must fail with exit code want and a stderr containing msg.
func (c cli) fails(want int, msg string, args ...string) {
	c.t.Helper()
	code, out, errs := c.run(args...)
	line := strings.Join(args, " ")
	assert.Equal(c.t, want, code, "nexctl %s: exit code (stdout %q, stderr %q)", line, out, errs)
	assert.Contains(c.t, errs, msg, "nexctl %s: stderr", line)
	if want == exitError {
		assert.True(c.t, strings.HasPrefix(errs, "nexctl: "), "nexctl %s: stderr %q", line, errs)
	}
}

// user returns nexctl acting as the user username, with a fresh API token the admin issues.
func (c cli) user(username string) cli {
	c.t.Helper()
	var tok api.Token
	c.json(&tok, "user", "token", username)
	return c.as(tok.Secret)
}

// as returns nexctl authenticated with token.
func (c cli) as(token string) cli { return c.with("NEXODUS_TOKEN", token) }

// with returns nexctl with one more environment variable.
func (c cli) with(key, value string) cli {
	env := maps.Clone(c.env)
	env[key] = value
	return cli{t: c.t, env: env}
}

func TestUsage(t *testing.T) {
	c := cli{t: t, env: map[string]string{"NEXODUS_URL": "http://127.0.0.1:1", "NEXODUS_TOKEN": "x"}}
	assert.Contains(t, c.ok("help"), "regkey create")
	assert.Contains(t, c.ok("--help"), "usage: nexctl")
	assert.Contains(t, c.ok("regkey", "create", "-h"), "--single-use")
	assert.Contains(t, c.ok("device", "help"), "device move")
	c.fails(2, "usage")
	c.fails(2, `unknown resource "frob"`, "frob", "list")
	c.fails(2, `unknown command "frob"`, "org", "frob")
	c.fails(2, "usage: nexctl org", "org")
	c.fails(2, "missing argument", "org", "get")
	c.fails(2, "too many arguments", "org", "get", "a", "b")
	c.fails(2, `unexpected argument "x"`, "org", "list", "x")
	c.fails(2, "flag provided but not defined", "org", "list", "--frob")
	c.fails(2, "flag provided but not defined", "--frob", "org", "list")
	c.fails(2, `unknown output format "yaml"`, "-o", "yaml", "org", "list")
	c.fails(2, `unknown output format "yaml"`, "org", "list", "-o", "yaml")
	c.fails(2, `invalid value "soon" for flag -expires: invalid duration "soon"`, "regkey", "create", "--org", "o", "--expires", "soon")
	c.fails(2, "--org is required", "device", "move", "d1")
	c.fails(2, "--org is required", "invite", "create", "bob")
	c.fails(2, "scheme", "--url", "ftp://x", "org", "list")
	c.as("").fails(2, "no token", "org", "list")
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90m": 90 * time.Minute, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour} {
		got, err := parseDuration(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, got, in)
		}
	}
	for _, in := range []string{"", "x", "-1h", "0", "0d", "1.5d", "d"} {
		_, err := parseDuration(in)
		assert.Error(t, err, "parseDuration(%q)", in)
	}
}

const adminToken = "nexctl-test-admin-token-0123456789"

// adminCLI runs the real coordinator on a fresh SQLite file behind an httptest server until
// the test ends, and returns nexctl set up for it with the admin token.
func adminCLI(t *testing.T) cli {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "coordinator.db"))
	require.NoError(t, err)
	coord, err := coordinator.New(ctx, coordinator.Config{Store: st, AdminToken: adminToken, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		_ = st.Close()
		require.NoError(t, err)
	}
	srv := httptest.NewServer(coord)
	t.Cleanup(func() {
		assert.NoError(t, coord.Close())
		srv.Close()
		assert.NoError(t, st.Close())
	})
	return cli{t: t, env: map[string]string{"NEXODUS_URL": srv.URL, "NEXODUS_TOKEN": adminToken}}
}

// registerDevice registers a device with a registration key the way a node would; nexctl has
// no command for that.
func (c cli) registerDevice(key, hostname string) api.Device {
	c.t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(c.t, err)
	cl, err := client.New(c.env["NEXODUS_URL"], client.WithToken(key))
	require.NoError(c.t, err)
	resp, err := cl.RegisterDevice(c.t.Context(), api.RegisterDeviceRequest{
		PublicKey: base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()),
		Hostname:  hostname,
		Endpoints: []api.Endpoint{{Source: api.EndpointLocal, Address: "192.0.2.1:51820"}},
	})
	require.NoError(c.t, err, "register %s", hostname)
	return resp.Device
}

// TestCLI drives every resource and verb against the real coordinator.
func TestCLI(t *testing.T) {
	admin := adminCLI(t)

	// ---- user (admin) ----
	var alice, bob api.CreateUserResponse
	admin.json(&alice, "user", "create", "alice")
	admin.json(&bob, "user", "create", "bob")
	require.Equal(t, "alice", alice.User.Username)
	require.NotEmpty(t, alice.PersonalOrganizationID)
	out := admin.ok("user", "create", "carol")
	assert.Contains(t, out, "PERSONAL ORGANIZATION")
	assert.Contains(t, out, "carol")
	var users []api.User
	admin.json(&users, "user", "list")
	assert.Len(t, users, 3)
	out = admin.ok("user", "list")
	assert.True(t, strings.HasPrefix(out, "ID"), "user list table:\n%s", out)
	assert.Equal(t, 4, strings.Count(out, "\n"), "user list table:\n%s", out)
	admin.fails(1, "nexctl: ", "user", "create", "alice") // taken
	var aliceTok, bobTok api.Token
	admin.json(&aliceTok, "user", "token", "alice", "--description", "laptop", "--expires", "30d") // by username
	admin.json(&bobTok, "user", "token", bob.User.ID)                                              // by ID
	require.NotEmpty(t, aliceTok.Secret)
	require.Equal(t, alice.User.ID, aliceTok.UserID)
	require.NotNil(t, aliceTok.ExpiresAt)
	code, out, errs := admin.run("user", "token", "bob")
	assert.Zero(t, code, "user token")
	assert.Contains(t, out, "SECRET")
	assert.Contains(t, errs, "only this once")
	a, b := admin.as(aliceTok.Secret), admin.as(bobTok.Secret)
	var me api.User
	a.json(&me, "user", "me")
	assert.Equal(t, alice.User.ID, me.ID)
	a.fails(1, "nexctl: ", "user", "list") // not admin

	// Global flags win over the environment, before or after RESOURCE VERB.
	assert.Contains(t, cli{t: t, env: map[string]string{}}.ok("--url", admin.env["NEXODUS_URL"], "user", "me", "--token", aliceTok.Secret), "alice")

	// ---- org ----
	var acme api.Organization
	a.json(&acme, "org", "create", "acme", "--description", "Acme Corp", "--cidr", "10.20.0.0/16")
	assert.Equal(t, "10.20.0.0/16", acme.IPv4CIDR)
	assert.Equal(t, "Acme Corp", acme.Description)
	var orgs []api.Organization
	a.json(&orgs, "org", "list")
	assert.Len(t, orgs, 2)
	var got api.Organization
	a.json(&got, "org", "get", "acme") // by name
	assert.Equal(t, acme.ID, got.ID, "org get by name")
	assert.Contains(t, a.ok("org", "get", acme.ID), "10.20.0.0/16")
	b.fails(1, "nexctl: ", "org", "get", acme.ID)

	// ---- invite ----
	var inv api.Invitation
	a.json(&inv, "invite", "create", "bob", "--org", "acme", "--expires", "48h")
	assert.Equal(t, api.InvitationPending, inv.Status)
	assert.Equal(t, "bob", inv.Username)
	a.fails(1, "nexctl: ", "invite", "create", "bob", "--org", "acme") // second live invitation
	var invs []api.Invitation
	b.json(&invs, "invite", "list")
	if assert.Len(t, invs, 1) {
		assert.Equal(t, inv.ID, invs[0].ID)
	}
	assert.Contains(t, b.ok("invite", "get", inv.ID), "pending")
	assert.Contains(t, b.ok("invite", "accept", inv.ID), "accepted")
	b.fails(1, "accepted", "invite", "accept", inv.ID)
	a.fails(1, "already a member", "invite", "create", "--org", acme.ID, "bob", "--role", "owner")
	var second api.Invitation
	a.json(&second, "invite", "create", "carol", "--org", "acme")
	c := admin.user("carol")
	assert.Contains(t, c.ok("invite", "decline", second.ID), "declined")
	a.json(&second, "invite", "create", "carol", "--org", "acme")
	assert.Contains(t, a.ok("invite", "revoke", second.ID), "revoked")
	c.fails(1, "revoked", "invite", "accept", second.ID)

	// ---- member ----
	var members []api.Member
	a.json(&members, "member", "list", "--org", "acme")
	assert.Len(t, members, 2)
	var personal []api.Member
	a.json(&personal, "member", "list") // default: the personal organization
	if assert.Len(t, personal, 1) {
		assert.Equal(t, "alice", personal[0].Username)
	}

	// ---- regkey ----
	var key api.RegKey
	a.json(&key, "regkey", "create", "--org", "acme", "--single-use", "--ephemeral", "--expires", "24h", "--description", "ci")
	assert.True(t, key.SingleUse)
	assert.True(t, key.Ephemeral)
	assert.NotNil(t, key.ExpiresAt)
	assert.NotEmpty(t, key.Secret)
	assert.Equal(t, acme.ID, key.OrganizationID)
	var reusable api.RegKey
	a.json(&reusable, "regkey", "create", "--org", "acme")
	code, out, errs = a.run("regkey", "create") // personal organization, table output
	assert.Zero(t, code, "regkey create (table)")
	assert.Contains(t, out, alice.PersonalOrganizationID)
	assert.Contains(t, out, "nxk_")
	assert.Contains(t, errs, "once")
	var keys []api.RegKey
	a.json(&keys, "regkey", "list")
	assert.Len(t, keys, 3)
	out = a.ok("regkey", "get", key.ID)
	assert.Contains(t, out, "ci")
	assert.NotContains(t, out, "nxk_", "regkey get shows the secret")

	// ---- device ----
	d1 := admin.registerDevice(key.Secret, "web-1")
	d2 := admin.registerDevice(reusable.Secret, "db-1")
	var devs []api.Device
	a.json(&devs, "device", "list")
	assert.Len(t, devs, 2)
	b.json(&devs, "device", "list", "--org", "acme")
	assert.Len(t, devs, 2)
	out = a.ok("device", "list", "--org", "acme")
	assert.Contains(t, out, "web-1")
	assert.Contains(t, out, d1.TunnelIPv4)
	out = a.ok("device", "get", "web-1")
	assert.Contains(t, out, d1.PublicKey)
	assert.Contains(t, out, "192.0.2.1:51820 (local)")
	var moved api.Device
	a.json(&moved, "device", "move", "db-1", "--org", "alice")
	assert.Equal(t, d2.ID, moved.ID)
	assert.Equal(t, alice.PersonalOrganizationID, moved.OrganizationID)
	b.fails(1, "nexctl: ", "device", "move", d1.ID, "--org", "bob")
	assert.Contains(t, a.ok("device", "delete", "web-1"), "deleted")
	a.fails(1, "not found", "device", "get", d1.ID)
	assert.Empty(t, a.ok("-o", "json", "device", "delete", d2.ID), "device delete -o json")

	// ---- cleanup verbs ----
	assert.Contains(t, a.ok("regkey", "delete", key.ID), "deleted")
	a.fails(1, "nexctl: ", "regkey", "get", key.ID)
	assert.Contains(t, a.ok("member", "remove", "bob", "--org", "acme"), "removed")
	a.fails(1, "nexctl: ", "org", "delete", "alice") // personal
	assert.Contains(t, a.ok("org", "delete", "acme"), "deleted")
	a.json(&orgs, "org", "list")
	assert.Len(t, orgs, 1, "org list after delete")
	admin.as("nxu_bogus_bogus").fails(1, "nexctl: ", "user", "me")
}

// TestOrgNamesNotUnique: organization names other than usernames may repeat, so --org NAME
// resolves among the caller's own organizations and asks for an ID when that is ambiguous.
func TestOrgNamesNotUnique(t *testing.T) {
	admin := adminCLI(t)
	admin.ok("user", "create", "carol")
	admin.ok("user", "create", "dan")
	carol, dan := admin.user("carol"), admin.user("dan")
	var mine, dans api.Organization
	carol.json(&mine, "org", "create", "zed")
	dan.json(&dans, "org", "create", "zed") // nobody learns that carol has one
	carol.fails(1, "username", "org", "create", "dan")
	// User zed can still be made; carol joins zed's personal organization.
	admin.ok("user", "create", "zed")
	zed := admin.user("zed")
	var inv api.Invitation
	zed.json(&inv, "invite", "create", "carol", "--org", "zed") // zed's own: his personal one
	carol.ok("invite", "accept", inv.ID)
	// Carol now belongs to two organizations named zed; dan's is not among them.
	carol.fails(1, `2 organizations are named "zed": use an ID`, "org", "get", "zed")
	var got api.Organization
	carol.json(&got, "org", "get", mine.ID)
	assert.Equal(t, mine.ID, got.ID, "org get by ID")
	// For dan, "zed" is his own, and zed's own personal organization is the default for zed.
	dan.json(&got, "org", "get", "zed")
	assert.Equal(t, dans.ID, got.ID, "dan's zed")
	var key api.RegKey
	zed.json(&key, "regkey", "create")
	assert.NotContains(t, []string{mine.ID, dans.ID}, key.OrganizationID, "zed's default organization is another zed")
}
