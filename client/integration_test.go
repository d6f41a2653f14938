package client_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

const adminToken = "integration-admin-token-0123456789"

// startCoordinator runs the real coordinator on a fresh SQLite file behind an httptest server
// and returns its URL. Everything is closed when the test ends.
func startCoordinator(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "coordinator.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	coord, err := coordinator.New(ctx, coordinator.Config{
		Store:      st,
		AdminToken: adminToken,
		Logger:     slog.New(slog.DiscardHandler),
		Heartbeat:  time.Second,
	})
	if err != nil {
		_ = st.Close()
		t.Fatalf("coordinator.New: %v", err)
	}
	srv := httptest.NewServer(coord)
	t.Cleanup(func() {
		if err := coord.Close(); err != nil {
			t.Errorf("coordinator Close: %v", err)
		}
		srv.Close()
		if err := st.Close(); err != nil {
			t.Errorf("store Close: %v", err)
		}
	})
	return srv.URL
}

func mustClient(t *testing.T, url, token string) *client.Client {
	t.Helper()
	c, err := client.New(url, client.WithToken(token), client.WithRetry(2, 10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wgKey makes a WireGuard (X25519) key pair: the private key's raw bytes and the public key in
// standard base64.
func wgKey(t *testing.T) ([32]byte, string) {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var priv [32]byte
	copy(priv[:], k.Bytes())
	return priv, base64.StdEncoding.EncodeToString(k.PublicKey().Bytes())
}

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

func check(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, what string, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if errors.Is(err, target) {
			return
		}
	}
	t.Errorf("%s: err = %v, want one of %v", what, err, targets)
}

// nextOf reads events until one of type typ arrives (skipping others), with a deadline.
func nextOf(t *testing.T, s *client.EventStream, typ string) api.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for a %s event: %v", typ, err)
		}
		if ev.Type == typ {
			return ev
		}
	}
}

// TestIntegration drives every client method against the real coordinator: the seed's
// onboarding flow (admin creates users and tokens; a user creates an organization, invites
// another, makes a registration key; devices register, see each other, signal each other and
// watch their event streams), then the error paths.
func TestIntegration(t *testing.T) {
	url := startCoordinator(t)
	ctx := t.Context()

	admin := mustClient(t, url, adminToken)
	check(t, "health", admin.Health(ctx))
	check(t, "ready", admin.Ready(ctx))

	// ---- users and tokens (admin) ----
	users := map[string]*api.CreateUserResponse{}
	clients := map[string]*client.Client{}
	for _, name := range []string{"alice", "bob", "carol"} {
		resp := must[*api.CreateUserResponse](t, "create user "+name)(admin.CreateUser(ctx, api.CreateUserRequest{Username: name}))
		if resp.User.Username != name || resp.User.ID == "" || resp.PersonalOrganizationID == "" {
			t.Fatalf("create user: %+v", resp)
		}
		users[name] = resp
		tok := must[*api.Token](t, "create token")(admin.CreateToken(ctx, resp.User.ID, api.CreateTokenRequest{
			Description: "test", ExpiresInSeconds: 3600,
		}))
		if tok.UserID != resp.User.ID || tok.ExpiresAt == nil || len(tok.Secret) < len(api.UserTokenPrefix)+8 ||
			tok.Secret[:len(api.UserTokenPrefix)] != api.UserTokenPrefix {
			t.Fatalf("token: %+v", tok)
		}
		clients[name] = admin.WithToken(tok.Secret)
	}
	_, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: "alice"})
	wantErr(t, "duplicate user", err, client.ErrConflict)
	list := must[[]api.User](t, "list users")(admin.ListUsers(ctx))
	if len(list) != 3 {
		t.Errorf("ListUsers: %d users, want 3", len(list))
	}
	alice, bob, carol := clients["alice"], clients["bob"], clients["carol"]
	me := must[*api.User](t, "me")(alice.Me(ctx))
	if me.ID != users["alice"].User.ID || me.Username != "alice" {
		t.Errorf("Me = %+v", me)
	}
	_, err = alice.ListUsers(ctx)
	wantErr(t, "list users as a user", err, client.ErrForbidden)
	_, err = admin.WithToken("nxu_bogus_bogus").Me(ctx)
	wantErr(t, "unknown token", err, client.ErrUnauthorized)

	// ---- organizations ----
	acme := must[*api.Organization](t, "create org")(alice.CreateOrganization(ctx, api.CreateOrganizationRequest{
		Name: "acme", Description: "Acme Corp",
	}))
	if acme.OwnerID != me.ID || !netip.MustParsePrefix(acme.IPv4CIDR).IsValid() || acme.IPv6CIDR == "" {
		t.Errorf("organization %+v", acme)
	}
	orgs := must[[]api.Organization](t, "list orgs")(alice.ListOrganizations(ctx))
	if !slices.ContainsFunc(orgs, func(o api.Organization) bool { return o.ID == acme.ID }) ||
		!slices.ContainsFunc(orgs, func(o api.Organization) bool { return o.ID == users["alice"].PersonalOrganizationID }) {
		t.Errorf("ListOrganizations = %+v", orgs)
	}
	got := must[*api.Organization](t, "get org")(alice.GetOrganization(ctx, acme.ID))
	if got.Name != "acme" || got.Description != "Acme Corp" {
		t.Errorf("GetOrganization = %+v", got)
	}
	_, err = bob.GetOrganization(ctx, acme.ID)
	wantErr(t, "outsider reads org", err, client.ErrNotFound, client.ErrForbidden)
	_, err = alice.GetOrganization(ctx, "no/such id")
	wantErr(t, "get org with a bad id", err, client.ErrNotFound, client.ErrBadRequest)

	// The organization's event stream, opened before any device exists.
	orgEvents := alice.WatchOrganization(ctx, acme.ID, client.WatchOptions{MinBackoff: 10 * time.Millisecond})
	defer orgEvents.Close()
	sync := nextOf(t, orgEvents, api.EventSync)
	if sync.OrganizationID != acme.ID || len(sync.Devices) != 0 {
		t.Errorf("first org event %+v", sync)
	}

	// ---- invitations ----
	inv := must[*api.Invitation](t, "invite bob")(alice.CreateInvitation(ctx, api.CreateInvitationRequest{
		OrganizationID: acme.ID, Username: "bob",
	}))
	if inv.Status != api.InvitationPending || inv.Role != api.RoleMember || inv.UserID != users["bob"].User.ID {
		t.Errorf("invitation %+v", inv)
	}
	_, err = alice.CreateInvitation(ctx, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "bob"})
	wantErr(t, "second live invitation", err, client.ErrConflict)
	_, err = bob.CreateInvitation(ctx, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "carol"})
	wantErr(t, "non-owner invites", err, client.ErrForbidden, client.ErrNotFound)
	bobInvs := must[[]api.Invitation](t, "bob lists invitations")(bob.ListInvitations(ctx))
	if len(bobInvs) != 1 || bobInvs[0].ID != inv.ID {
		t.Errorf("bob's invitations %+v", bobInvs)
	}
	if g := must[*api.Invitation](t, "get invitation")(bob.GetInvitation(ctx, inv.ID)); g.OrganizationID != acme.ID {
		t.Errorf("GetInvitation = %+v", g)
	}
	_, err = carol.GetInvitation(ctx, inv.ID)
	wantErr(t, "stranger reads invitation", err, client.ErrNotFound, client.ErrForbidden)
	_, err = carol.AcceptInvitation(ctx, inv.ID)
	wantErr(t, "stranger accepts", err, client.ErrNotFound, client.ErrForbidden)
	acc := must[*api.Invitation](t, "accept")(bob.AcceptInvitation(ctx, inv.ID))
	if acc.Status != api.InvitationAccepted {
		t.Errorf("accepted invitation %+v", acc)
	}
	_, err = bob.AcceptInvitation(ctx, inv.ID)
	wantErr(t, "accept twice", err, client.ErrGone)

	members := must[[]api.Member](t, "list members")(bob.ListMembers(ctx, acme.ID))
	if len(members) != 2 || !slices.ContainsFunc(members, func(m api.Member) bool {
		return m.Username == "bob" && m.Role == api.RoleMember
	}) {
		t.Errorf("members %+v", members)
	}

	declined := must[*api.Invitation](t, "invite carol")(alice.CreateInvitation(ctx, api.CreateInvitationRequest{
		OrganizationID: acme.ID, Username: "carol", Role: api.RoleMember, ExpiresInSeconds: 600,
	}))
	if d := must[*api.Invitation](t, "decline")(carol.DeclineInvitation(ctx, declined.ID)); d.Status != api.InvitationDeclined {
		t.Errorf("declined invitation %+v", d)
	}
	_, err = carol.AcceptInvitation(ctx, declined.ID)
	wantErr(t, "accept declined", err, client.ErrGone)
	revoked := must[*api.Invitation](t, "invite carol again")(alice.CreateInvitation(ctx, api.CreateInvitationRequest{
		OrganizationID: acme.ID, Username: "carol",
	}))
	check(t, "revoke", alice.RevokeInvitation(ctx, revoked.ID))
	_, err = carol.AcceptInvitation(ctx, revoked.ID)
	wantErr(t, "accept revoked", err, client.ErrGone)
	if all := must[[]api.Invitation](t, "alice lists invitations")(alice.ListInvitations(ctx)); len(all) != 3 {
		t.Errorf("alice sees %d invitations, want 3", len(all))
	}

	// ---- registration keys ----
	single := must[*api.RegKey](t, "create single-use key")(alice.CreateRegKey(ctx, api.CreateRegKeyRequest{
		OrganizationID: acme.ID, Description: "one device", SingleUse: true, ExpiresInSeconds: 3600,
	}))
	if !single.SingleUse || single.ExpiresAt == nil || len(single.Secret) < 8 || single.Secret[:len(api.RegKeyPrefix)] != api.RegKeyPrefix {
		t.Errorf("reg key %+v", single)
	}
	reusable := must[*api.RegKey](t, "create reusable key")(alice.CreateRegKey(ctx, api.CreateRegKeyRequest{OrganizationID: acme.ID}))
	_, err = bob.CreateRegKey(ctx, api.CreateRegKeyRequest{OrganizationID: acme.ID})
	wantErr(t, "member creates key", err, client.ErrForbidden)
	keys := must[[]api.RegKey](t, "list keys")(alice.ListRegKeys(ctx))
	if len(keys) != 2 {
		t.Errorf("ListRegKeys: %d keys, want 2", len(keys))
	}
	for _, k := range keys {
		if k.Secret != "" {
			t.Errorf("listed key carries its secret: %+v", k)
		}
	}
	if k := must[*api.RegKey](t, "get key")(alice.GetRegKey(ctx, single.ID)); k.Secret != "" || k.Description != "one device" {
		t.Errorf("GetRegKey = %+v", k)
	}

	// ---- devices ----
	register := func(key, hostname string, eps ...api.Endpoint) (*api.Device, *client.Client) {
		t.Helper()
		priv, pub := wgKey(t)
		resp := must[*api.RegisterDeviceResponse](t, "register "+hostname)(admin.WithToken(key).RegisterDevice(ctx, api.RegisterDeviceRequest{
			PublicKey: pub, Hostname: hostname, Endpoints: eps,
		}))
		tok, err := client.OpenDeviceToken(priv, *resp)
		check(t, "open device token", err)
		if _, err := client.OpenDeviceToken([32]byte{1}, *resp); err == nil {
			t.Error("a wrong private key opened the device token")
		}
		d := resp.Device
		if d.OrganizationID != acme.ID || d.PublicKey != pub || !netip.MustParsePrefix(acme.IPv4CIDR).Contains(netip.MustParseAddr(d.TunnelIPv4)) {
			t.Errorf("registered device %+v", d)
		}
		return &d, admin.WithToken(tok)
	}
	dev1, dev1c := register(single.Secret, "laptop", api.Endpoint{Source: api.EndpointLocal, Address: "192.168.1.10:51820"})
	added := nextOf(t, orgEvents, api.EventDeviceAdded)
	if added.Device == nil || added.Device.ID != dev1.ID {
		t.Errorf("device.added event %+v", added)
	}
	_, pub := wgKey(t)
	_, err = admin.WithToken(single.Secret).RegisterDevice(ctx, api.RegisterDeviceRequest{PublicKey: pub, Hostname: "second"})
	wantErr(t, "reuse a single-use key", err, client.ErrGone, client.ErrUnauthorized, client.ErrForbidden)
	dev2, dev2c := register(reusable.Secret, "server")

	// The device stream of dev2, then a signal from dev1 reaches it.
	dev2Events := dev2c.WatchDevice(ctx, dev2.ID, client.WatchOptions{})
	defer dev2Events.Close()
	if s := nextOf(t, dev2Events, api.EventSync); !slices.ContainsFunc(s.Devices, func(d api.Device) bool { return d.ID == dev1.ID }) {
		t.Errorf("dev2's sync lacks dev1: %+v", s)
	}
	check(t, "signal", dev1c.Signal(ctx, dev2.ID, []byte("ice offer")))
	sig := nextOf(t, dev2Events, api.EventSignal)
	if sig.Signal == nil || sig.Signal.From != dev1.ID || sig.Signal.To != dev2.ID || string(sig.Signal.Payload) != "ice offer" {
		t.Errorf("signal event %+v", sig)
	}
	_, err = dev1c.WatchDevice(ctx, dev2.ID, client.WatchOptions{}).Next(ctx)
	wantErr(t, "a device watches another's stream", err, client.ErrForbidden, client.ErrNotFound)

	peers := must[[]api.Device](t, "peer list")(dev1c.ListDevicesInOrganization(ctx, acme.ID))
	if len(peers) != 2 {
		t.Errorf("peer list has %d devices, want 2", len(peers))
	}
	if d := must[*api.Device](t, "device gets itself")(dev1c.GetDevice(ctx, dev1.ID)); d.Hostname != "laptop" {
		t.Errorf("GetDevice = %+v", d)
	}
	host := "laptop-2"
	eps := []api.Endpoint{{Source: api.EndpointReflexive, Address: "203.0.113.7:40000"}}
	upd := must[*api.Device](t, "device updates itself")(dev1c.UpdateDevice(ctx, dev1.ID, api.UpdateDeviceRequest{Hostname: &host, Endpoints: &eps}))
	if upd.Hostname != host || len(upd.Endpoints) != 1 || upd.TunnelIPv4 != dev1.TunnelIPv4 {
		t.Errorf("updated device %+v", upd)
	}
	if ev := nextOf(t, dev2Events, api.EventDeviceUpdated); ev.Device == nil || ev.Device.Hostname != host {
		t.Errorf("device.updated event %+v", ev)
	}
	_, err = dev1c.UpdateDevice(ctx, dev2.ID, api.UpdateDeviceRequest{Hostname: &host})
	wantErr(t, "a device updates another", err, client.ErrForbidden, client.ErrNotFound)

	// Resume: remember where the org stream is, stop it, change things, resume from there.
	rev := orgEvents.Revision()
	check(t, "close org stream", orgEvents.Close())
	all := must[[]api.Device](t, "list devices")(alice.ListDevices(ctx))
	if len(all) != 2 {
		t.Errorf("ListDevices: %d devices, want 2", len(all))
	}
	personal := users["alice"].PersonalOrganizationID
	moved := must[*api.Device](t, "move device")(alice.UpdateDevice(ctx, dev2.ID, api.UpdateDeviceRequest{OrganizationID: &personal}))
	if moved.OrganizationID != personal || moved.TunnelIPv4 == dev2.TunnelIPv4 {
		t.Errorf("moved device %+v", moved)
	}
	resumed := alice.WatchOrganization(ctx, acme.ID, client.WatchOptions{AfterRevision: rev})
	defer resumed.Close()
	ev := must[api.Event](t, "resumed stream")(resumed.Next(ctx))
	if ev.Revision <= rev || ev.Type == api.EventSync {
		t.Errorf("resumed stream began with %s at %d (resumed after %d)", ev.Type, ev.Revision, rev)
	}
	for ev.Type != api.EventDeviceRemoved {
		ev = must[api.Event](t, "resumed stream")(resumed.Next(ctx))
	}
	if ev.Device == nil || ev.Device.ID != dev2.ID {
		t.Errorf("device.removed event %+v", ev)
	}
	_, err = dev1c.GetDevice(ctx, dev2.ID)
	wantErr(t, "read a device of another organization", err, client.ErrNotFound, client.ErrForbidden)
	err = dev1c.Signal(ctx, dev2.ID, []byte("x"))
	wantErr(t, "signal across organizations", err, client.ErrNotFound, client.ErrForbidden)
	_, err = bob.UpdateDevice(ctx, dev1.ID, api.UpdateDeviceRequest{OrganizationID: &personal})
	wantErr(t, "non-owner moves a device", err, client.ErrForbidden, client.ErrNotFound)

	// ---- teardown paths ----
	check(t, "remove member", alice.RemoveMember(ctx, acme.ID, users["bob"].User.ID))
	if os := must[[]api.Organization](t, "bob lists orgs")(bob.ListOrganizations(ctx)); slices.ContainsFunc(os, func(o api.Organization) bool { return o.ID == acme.ID }) {
		t.Error("bob still sees acme after removal")
	}
	check(t, "delete key", alice.DeleteRegKey(ctx, reusable.ID))
	_, err = alice.GetRegKey(ctx, reusable.ID)
	wantErr(t, "get deleted key", err, client.ErrNotFound)
	_, pub = wgKey(t)
	_, err = admin.WithToken(reusable.Secret).RegisterDevice(ctx, api.RegisterDeviceRequest{PublicKey: pub, Hostname: "late"})
	wantErr(t, "register with a deleted key", err, client.ErrUnauthorized)
	check(t, "device deletes itself", dev1c.DeleteDevice(ctx, dev1.ID))
	_, err = alice.GetDevice(ctx, dev1.ID)
	wantErr(t, "get deleted device", err, client.ErrNotFound)
	_, err = dev1c.GetDevice(ctx, dev1.ID)
	wantErr(t, "token of a deleted device", err, client.ErrUnauthorized, client.ErrNotFound)
	check(t, "delete moved device", alice.DeleteDevice(ctx, dev2.ID))
	_, err = dev2Events.Next(ctx)
	for err == nil {
		_, err = dev2Events.Next(ctx)
	}
	wantErr(t, "event stream of a deleted device", err, client.ErrUnauthorized, client.ErrNotFound, client.ErrForbidden)

	check(t, "delete org", alice.DeleteOrganization(ctx, acme.ID))
	_, err = alice.GetOrganization(ctx, acme.ID)
	wantErr(t, "get deleted org", err, client.ErrNotFound)
	err = alice.DeleteOrganization(ctx, personal)
	if err == nil {
		t.Error("deleting a personal organization succeeded")
	}
}

// TestIntegrationBadInput checks that the client surfaces the coordinator's 4xx answers as
// typed errors.
func TestIntegrationBadInput(t *testing.T) {
	url := startCoordinator(t)
	ctx := t.Context()
	admin := mustClient(t, url, adminToken)
	_, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: ""})
	wantErr(t, "empty username", err, client.ErrBadRequest)
	u := must[*api.CreateUserResponse](t, "create user")(admin.CreateUser(ctx, api.CreateUserRequest{Username: "dave"}))
	tok := must[*api.Token](t, "token")(admin.CreateToken(ctx, u.User.ID, api.CreateTokenRequest{}))
	dave := admin.WithToken(tok.Secret)
	_, err = dave.CreateOrganization(ctx, api.CreateOrganizationRequest{Name: "x", IPv4CIDR: "not a cidr"})
	wantErr(t, "bad CIDR", err, client.ErrBadRequest)
	_, err = dave.CreateOrganization(ctx, api.CreateOrganizationRequest{Name: "dave"})
	wantErr(t, "taken organization name", err, client.ErrConflict)
	// A /30 has room for very few devices: the pool runs out.
	tiny := must[*api.Organization](t, "tiny org")(dave.CreateOrganization(ctx, api.CreateOrganizationRequest{Name: "tiny", IPv4CIDR: "10.9.0.0/30"}))
	var exhausted error
	for i := range 8 {
		_, pub := wgKey(t)
		_, exhausted = dave.RegisterDevice(ctx, api.RegisterDeviceRequest{
			OrganizationID: tiny.ID, PublicKey: pub, Hostname: "h" + string(rune('a'+i)),
		})
		if exhausted != nil {
			break
		}
	}
	wantErr(t, "exhausted pool", exhausted, client.ErrPoolExhausted)
	if !errors.Is(exhausted, client.ErrConflict) {
		t.Errorf("pool exhaustion %v does not match ErrConflict", exhausted)
	}
	_, err = dave.RegisterDevice(ctx, api.RegisterDeviceRequest{OrganizationID: tiny.ID, PublicKey: "short", Hostname: "h"})
	wantErr(t, "bad public key", err, client.ErrBadRequest)
}
