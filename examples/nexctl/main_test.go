package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const adminToken = "nexctl-test-admin-token-0123456789"

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
	if code != 0 {
		c.t.Fatalf("nexctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// json runs a command with -o json that must succeed and decodes its output into v.
func (c cli) json(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append([]string{"-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("nexctl %s: output %q: %v", strings.Join(args, " "), out, err)
	}
}

// fails runs a command that must fail with exit code want and a stderr containing msg.
func (c cli) fails(want int, msg string, args ...string) {
	c.t.Helper()
	code, out, errs := c.run(args...)
	if code != want || !strings.Contains(errs, msg) || (want == 1 && !strings.HasPrefix(errs, "nexctl: ")) {
		c.t.Errorf("nexctl %s: exit %d, stderr %q (stdout %q); want exit %d and %q",
			strings.Join(args, " "), code, errs, out, want, msg)
	}
}

func (c cli) as(token string) cli {
	env := map[string]string{}
	for k, v := range c.env {
		env[k] = v
	}
	env["NEXODUS_TOKEN"] = token
	return cli{t: c.t, env: env}
}

func TestUsage(t *testing.T) {
	c := cli{t: t, env: map[string]string{"NEXODUS_URL": "http://127.0.0.1:1", "NEXODUS_TOKEN": "x"}}
	if code, out, _ := c.run("help"); code != 0 || !strings.Contains(out, "regkey create") {
		t.Errorf("help: exit %d, %q", code, out)
	}
	if code, out, _ := c.run("--help"); code != 0 || !strings.Contains(out, "usage: nexctl") {
		t.Errorf("--help: exit %d, %q", code, out)
	}
	if code, out, _ := c.run("regkey", "create", "-h"); code != 0 || !strings.Contains(out, "--single-use") {
		t.Errorf("regkey create -h: exit %d, %q", code, out)
	}
	if code, out, _ := c.run("device", "help"); code != 0 || !strings.Contains(out, "device move") {
		t.Errorf("device help: exit %d, %q", code, out)
	}
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
	c.fails(2, "--expires", "regkey", "create", "--org", "o", "--expires", "soon")
	c.fails(2, "--org is required", "device", "move", "d1")
	c.fails(2, "--org is required", "invite", "create", "bob")
	c.fails(2, "scheme", "--url", "ftp://x", "org", "list")
	c.as("").fails(2, "no token", "org", "list")
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90m": 90 * time.Minute, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "x", "-1h", "0", "0d", "1.5d", "d"} {
		if _, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) succeeded", in)
		}
	}
}

// startCoordinator runs the real coordinator on a fresh SQLite file.
func startCoordinator(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "coordinator.db"))
	if err != nil {
		t.Fatal(err)
	}
	coord, err := coordinator.New(ctx, coordinator.Config{Store: st, AdminToken: adminToken, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		_ = st.Close()
		t.Fatal(err)
	}
	srv := httptest.NewServer(coord)
	t.Cleanup(func() {
		_ = coord.Close()
		srv.Close()
		_ = st.Close()
	})
	return srv.URL
}

// registerDevice registers a device with a registration key the way a node would; nexctl has
// no command for that.
func registerDevice(t *testing.T, url, key, hostname string) api.Device {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(url, client.WithToken(key))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.RegisterDevice(t.Context(), api.RegisterDeviceRequest{
		PublicKey: base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()),
		Hostname:  hostname,
		Endpoints: []api.Endpoint{{Source: api.EndpointLocal, Address: "192.0.2.1:51820"}},
	})
	if err != nil {
		t.Fatalf("register %s: %v", hostname, err)
	}
	return resp.Device
}

// TestCLI drives every resource and verb against the real coordinator.
func TestCLI(t *testing.T) {
	url := startCoordinator(t)
	admin := cli{t: t, env: map[string]string{"NEXODUS_URL": url, "NEXODUS_TOKEN": adminToken}}

	// ---- user (admin) ----
	var alice, bob api.CreateUserResponse
	admin.json(&alice, "user", "create", "alice")
	admin.json(&bob, "user", "create", "bob")
	if alice.User.Username != "alice" || alice.PersonalOrganizationID == "" {
		t.Fatalf("user create: %+v", alice)
	}
	if out := admin.ok("user", "create", "carol"); !strings.Contains(out, "PERSONAL ORGANIZATION") || !strings.Contains(out, "carol") {
		t.Errorf("user create table:\n%s", out)
	}
	var users []api.User
	admin.json(&users, "user", "list")
	if len(users) != 3 {
		t.Errorf("user list: %+v", users)
	}
	if out := admin.ok("user", "list"); !strings.HasPrefix(out, "ID") || strings.Count(out, "\n") != 4 {
		t.Errorf("user list table:\n%s", out)
	}
	admin.fails(1, "nexctl: ", "user", "create", "alice") // taken
	var aliceTok, bobTok api.Token
	admin.json(&aliceTok, "user", "token", "alice", "--description", "laptop", "--expires", "30d") // by username
	admin.json(&bobTok, "user", "token", bob.User.ID)                                              // by ID
	if aliceTok.Secret == "" || aliceTok.UserID != alice.User.ID || aliceTok.ExpiresAt == nil {
		t.Fatalf("user token: %+v", aliceTok)
	}
	code, out, errs := admin.run("user", "token", "bob")
	if code != 0 || !strings.Contains(out, "SECRET") || !strings.Contains(errs, "only this once") {
		t.Errorf("user token table: exit %d\n%s\n%s", code, out, errs)
	}
	a, b := admin.as(aliceTok.Secret), admin.as(bobTok.Secret)
	var me api.User
	a.json(&me, "user", "me")
	if me.ID != alice.User.ID {
		t.Errorf("user me: %+v", me)
	}
	a.fails(1, "nexctl: ", "user", "list") // not admin

	// Global flags win over the environment, before or after RESOURCE VERB.
	if out := (cli{t: t, env: map[string]string{}}).ok("--url", url, "user", "me", "--token", aliceTok.Secret); !strings.Contains(out, "alice") {
		t.Errorf("flags instead of env: %s", out)
	}

	// ---- org ----
	var acme api.Organization
	a.json(&acme, "org", "create", "acme", "--description", "Acme Corp", "--cidr", "10.20.0.0/16")
	if acme.IPv4CIDR != "10.20.0.0/16" || acme.Description != "Acme Corp" {
		t.Errorf("org create: %+v", acme)
	}
	var orgs []api.Organization
	a.json(&orgs, "org", "list")
	if len(orgs) != 2 {
		t.Errorf("org list: %+v", orgs)
	}
	var got api.Organization
	a.json(&got, "org", "get", "acme") // by name
	if got.ID != acme.ID {
		t.Errorf("org get by name: %+v", got)
	}
	if out := a.ok("org", "get", acme.ID); !strings.Contains(out, "10.20.0.0/16") {
		t.Errorf("org get table:\n%s", out)
	}
	b.fails(1, "nexctl: ", "org", "get", acme.ID)

	// ---- invite ----
	var inv api.Invitation
	a.json(&inv, "invite", "create", "bob", "--org", "acme", "--expires", "48h")
	if inv.Status != api.InvitationPending || inv.Username != "bob" {
		t.Errorf("invite create: %+v", inv)
	}
	a.fails(1, "nexctl: ", "invite", "create", "bob", "--org", "acme") // second live invitation
	var invs []api.Invitation
	b.json(&invs, "invite", "list")
	if len(invs) != 1 || invs[0].ID != inv.ID {
		t.Errorf("invite list: %+v", invs)
	}
	if out := b.ok("invite", "get", inv.ID); !strings.Contains(out, "pending") {
		t.Errorf("invite get:\n%s", out)
	}
	if out := b.ok("invite", "accept", inv.ID); !strings.Contains(out, "accepted") {
		t.Errorf("invite accept:\n%s", out)
	}
	b.fails(1, "accepted", "invite", "accept", inv.ID)
	a.fails(1, "already a member", "invite", "create", "--org", acme.ID, "bob", "--role", "owner")
	var second api.Invitation
	a.json(&second, "invite", "create", "carol", "--org", "acme")
	carolTok := api.Token{}
	admin.json(&carolTok, "user", "token", "carol")
	c := admin.as(carolTok.Secret)
	if out := c.ok("invite", "decline", second.ID); !strings.Contains(out, "declined") {
		t.Errorf("invite decline:\n%s", out)
	}
	a.json(&second, "invite", "create", "carol", "--org", "acme")
	if out := a.ok("invite", "revoke", second.ID); !strings.Contains(out, "revoked") {
		t.Errorf("invite revoke: %q", out)
	}
	c.fails(1, "revoked", "invite", "accept", second.ID)

	// ---- member ----
	var members []api.Member
	a.json(&members, "member", "list", "--org", "acme")
	if len(members) != 2 {
		t.Errorf("member list: %+v", members)
	}
	var personal []api.Member
	a.json(&personal, "member", "list") // default: the personal organization
	if len(personal) != 1 || personal[0].Username != "alice" {
		t.Errorf("member list of the personal org: %+v", personal)
	}

	// ---- regkey ----
	var key api.RegKey
	a.json(&key, "regkey", "create", "--org", "acme", "--single-use", "--ephemeral", "--expires", "24h", "--description", "ci")
	if !key.SingleUse || !key.Ephemeral || key.ExpiresAt == nil || key.Secret == "" || key.OrganizationID != acme.ID {
		t.Errorf("regkey create: %+v", key)
	}
	var reusable api.RegKey
	a.json(&reusable, "regkey", "create", "--org", "acme")
	code, out, errs = a.run("regkey", "create") // personal organization, table output
	if code != 0 || !strings.Contains(out, alice.PersonalOrganizationID) || !strings.Contains(out, "nxk_") || !strings.Contains(errs, "once") {
		t.Errorf("regkey create (table): exit %d\n%s\n%s", code, out, errs)
	}
	var keys []api.RegKey
	a.json(&keys, "regkey", "list")
	if len(keys) != 3 {
		t.Errorf("regkey list: %d keys", len(keys))
	}
	if out := a.ok("regkey", "get", key.ID); !strings.Contains(out, "ci") || strings.Contains(out, "nxk_") {
		t.Errorf("regkey get:\n%s", out)
	}

	// ---- device ----
	d1 := registerDevice(t, url, key.Secret, "web-1")
	d2 := registerDevice(t, url, reusable.Secret, "db-1")
	var devs []api.Device
	a.json(&devs, "device", "list")
	if len(devs) != 2 {
		t.Errorf("device list: %+v", devs)
	}
	b.json(&devs, "device", "list", "--org", "acme")
	if len(devs) != 2 {
		t.Errorf("device list --org: %+v", devs)
	}
	if out := a.ok("device", "list", "--org", "acme"); !strings.Contains(out, "web-1") || !strings.Contains(out, d1.TunnelIPv4) {
		t.Errorf("device list table:\n%s", out)
	}
	if out := a.ok("device", "get", "web-1"); !strings.Contains(out, d1.PublicKey) || !strings.Contains(out, "192.0.2.1:51820 (local)") {
		t.Errorf("device get:\n%s", out)
	}
	var moved api.Device
	a.json(&moved, "device", "move", "db-1", "--org", "alice")
	if moved.ID != d2.ID || moved.OrganizationID != alice.PersonalOrganizationID {
		t.Errorf("device move: %+v", moved)
	}
	b.fails(1, "nexctl: ", "device", "move", d1.ID, "--org", "bob")
	if out := a.ok("device", "delete", "web-1"); !strings.Contains(out, "deleted") {
		t.Errorf("device delete: %q", out)
	}
	a.fails(1, "not found", "device", "get", d1.ID)
	if out := a.ok("-o", "json", "device", "delete", d2.ID); out != "" {
		t.Errorf("device delete -o json printed %q", out)
	}

	// ---- cleanup verbs ----
	if out := a.ok("regkey", "delete", key.ID); !strings.Contains(out, "deleted") {
		t.Errorf("regkey delete: %q", out)
	}
	a.fails(1, "nexctl: ", "regkey", "get", key.ID)
	if out := a.ok("member", "remove", "bob", "--org", "acme"); !strings.Contains(out, "removed") {
		t.Errorf("member remove: %q", out)
	}
	a.fails(1, "nexctl: ", "org", "delete", "alice") // personal
	if out := a.ok("org", "delete", "acme"); !strings.Contains(out, "deleted") {
		t.Errorf("org delete: %q", out)
	}
	a.json(&orgs, "org", "list")
	if len(orgs) != 1 {
		t.Errorf("org list after delete: %+v", orgs)
	}
	admin.as("nxu_bogus_bogus").fails(1, "nexctl: ", "user", "me")
}

// TestOrgNamesNotUnique: organization names other than usernames may repeat, so --org NAME
// resolves among the caller's own organizations and asks for an ID when that is ambiguous.
func TestOrgNamesNotUnique(t *testing.T) {
	url := startCoordinator(t)
	admin := cli{t: t, env: map[string]string{"NEXODUS_URL": url, "NEXODUS_TOKEN": adminToken}}
	token := func(name string) string {
		var tok api.Token
		admin.json(&tok, "user", "token", name)
		return tok.Secret
	}
	admin.ok("user", "create", "carol")
	admin.ok("user", "create", "dan")
	carol, dan := admin.as(token("carol")), admin.as(token("dan"))
	var mine, dans api.Organization
	carol.json(&mine, "org", "create", "zed")
	dan.json(&dans, "org", "create", "zed") // nobody learns that carol has one
	carol.fails(1, "username", "org", "create", "dan")
	// User zed can still be made; carol joins zed's personal organization.
	admin.ok("user", "create", "zed")
	zed := admin.as(token("zed"))
	var inv api.Invitation
	zed.json(&inv, "invite", "create", "carol", "--org", "zed") // zed's own: his personal one
	carol.ok("invite", "accept", inv.ID)
	// Carol now belongs to two organizations named zed; dan's is not among them.
	carol.fails(1, `2 organizations are named "zed": use an ID`, "org", "get", "zed")
	var got api.Organization
	carol.json(&got, "org", "get", mine.ID)
	if got.ID != mine.ID {
		t.Errorf("org get by ID: %+v", got)
	}
	// For dan, "zed" is his own, and zed's own personal organization is the default for zed.
	dan.json(&got, "org", "get", "zed")
	if got.ID != dans.ID {
		t.Errorf("dan's zed: %+v, want %s", got, dans.ID)
	}
	var key api.RegKey
	zed.json(&key, "regkey", "create")
	if key.OrganizationID == mine.ID || key.OrganizationID == dans.ID {
		t.Errorf("zed's default organization is another zed: %+v", key)
	}
}
