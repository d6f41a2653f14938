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
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

const adminToken = "integration-admin-token-0123456789"

// openCoordinator opens the SQLite store at path and the real coordinator on it, with
// adminToken; configure, when set, adjusts the configuration.
func openCoordinator(t testing.TB, path string, configure func(*coordinator.Config)) (*coordinator.Server, *sqlite.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path)
	require.NoError(t, err, "open store")
	cfg := coordinator.Config{Store: st, AdminToken: adminToken, Logger: slog.New(slog.DiscardHandler), Heartbeat: time.Second}
	if configure != nil {
		configure(&cfg)
	}
	coord, err := coordinator.New(ctx, cfg)
	if err != nil {
		_ = st.Close()
		require.NoError(t, err, "coordinator.New")
	}
	return coord, st
}

// startCoordinator runs the real coordinator on a fresh SQLite file behind an httptest server
// and returns its URL; configure, when set, adjusts its configuration. Everything is closed
// when the test ends.
func startCoordinator(t *testing.T, configure func(*coordinator.Config)) string {
	t.Helper()
	coord, st := openCoordinator(t, filepath.Join(t.TempDir(), "coordinator.db"), configure)
	srv := httptest.NewServer(coord)
	t.Cleanup(func() {
		assert.NoError(t, coord.Close(), "coordinator Close")
		srv.Close()
		assert.NoError(t, st.Close(), "store Close")
	})
	return srv.URL
}

func mustClient(t *testing.T, url, token string) *client.Client {
	t.Helper()
	c, err := client.New(url, client.WithToken(token), client.WithRetry(2, 10*time.Millisecond, 100*time.Millisecond))
	require.NoError(t, err)
	return c
}

// wgKey makes a WireGuard (X25519) key pair: the private key's raw bytes and the public key in
// standard base64.
func wgKey(t *testing.T) ([32]byte, string) {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	var priv [32]byte
	copy(priv[:], k.Bytes())
	return priv, base64.StdEncoding.EncodeToString(k.PublicKey().Bytes())
}

// must returns a function that fails the test unless its error is nil and returns its value,
// so that a call's result can be used in place: must[*api.User](t, "me")(c.Me(ctx)).
func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		require.NoError(t, err, what)
		return v
	}
}

// wantErr checks that err matches one of targets.
func wantErr(t *testing.T, what string, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if errors.Is(err, target) {
			return
		}
	}
	assert.Failf(t, "wrong error", "%s: err = %v, want one of %v", what, err, targets)
}

// newTenant makes a user with an API token; it returns a client acting as the user and the
// user's creation (with its personal organization).
func newTenant(t *testing.T, admin *client.Client, username string) (*client.Client, *api.CreateUserResponse) {
	t.Helper()
	u := must[*api.CreateUserResponse](t, "create user")(admin.CreateUser(t.Context(), api.CreateUserRequest{Username: username}))
	tok := must[*api.Token](t, "create token")(admin.CreateToken(t.Context(), u.User.ID, api.CreateTokenRequest{}))
	return admin.WithToken(tok.Secret), u
}

// registerIn registers a device with hostname in org as user and returns the registration
// and a client that acts as the device.
func registerIn(t *testing.T, user *client.Client, org, hostname string) (*api.RegisterDeviceResponse, *client.Client) {
	t.Helper()
	priv, pub := wgKey(t)
	reg := must[*api.RegisterDeviceResponse](t, "register")(user.RegisterDevice(t.Context(), api.RegisterDeviceRequest{
		OrganizationID: org, PublicKey: pub, Hostname: hostname,
	}))
	devTok, err := client.OpenDeviceToken(priv, *reg)
	require.NoError(t, err)
	return reg, user.WithToken(devTok)
}

// nextOf reads events until one of type typ arrives (skipping others), with a deadline.
func nextOf(t *testing.T, s *client.EventStream, typ string) api.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		ev, err := s.Next(ctx)
		require.NoError(t, err, "waiting for a %s event", typ)
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
	url := startCoordinator(t, nil)
	ctx := t.Context()

	admin := mustClient(t, url, adminToken)
	require.NoError(t, admin.Health(ctx), "health")
	require.NoError(t, admin.Ready(ctx), "ready")

	// ---- users and tokens (admin) ----
	users := map[string]*api.CreateUserResponse{}
	clients := map[string]*client.Client{}
	for _, name := range []string{"alice", "bob", "carol"} {
		resp := must[*api.CreateUserResponse](t, "create user "+name)(admin.CreateUser(ctx, api.CreateUserRequest{Username: name}))
		require.Equal(t, name, resp.User.Username)
		require.NotEmpty(t, resp.User.ID)
		require.NotEmpty(t, resp.PersonalOrganizationID)
		users[name] = resp
		tok := must[*api.Token](t, "create token")(admin.CreateToken(ctx, resp.User.ID, api.CreateTokenRequest{
			Description: "test", ExpiresInSeconds: 3600,
		}))
		require.Equal(t, resp.User.ID, tok.UserID)
		require.NotNil(t, tok.ExpiresAt)
		require.True(t, strings.HasPrefix(tok.Secret, api.UserTokenPrefix) && len(tok.Secret) >= len(api.UserTokenPrefix)+8,
			"token secret %q", tok.Secret)
		clients[name] = admin.WithToken(tok.Secret)
	}
	_, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: "alice"})
	wantErr(t, "duplicate user", err, client.ErrConflict)
	assert.Len(t, must[[]api.User](t, "list users")(admin.ListUsers(ctx)), 3)
	alice, bob, carol := clients["alice"], clients["bob"], clients["carol"]
	me := must[*api.User](t, "me")(alice.Me(ctx))
	assert.Equal(t, users["alice"].User.ID, me.ID)
	assert.Equal(t, "alice", me.Username)
	_, err = alice.ListUsers(ctx)
	wantErr(t, "list users as a user", err, client.ErrForbidden)
	_, err = admin.WithToken("nxu_bogus_bogus").Me(ctx)
	wantErr(t, "unknown token", err, client.ErrUnauthorized)

	// ---- organizations ----
	acme := must[*api.Organization](t, "create org")(alice.CreateOrganization(ctx, api.CreateOrganizationRequest{
		Name: "acme", Description: "Acme Corp",
	}))
	assert.Equal(t, me.ID, acme.OwnerID)
	assert.True(t, netip.MustParsePrefix(acme.IPv4CIDR).IsValid())
	assert.NotEmpty(t, acme.IPv6CIDR)
	orgIDs := func(os []api.Organization) []string {
		var ids []string
		for _, o := range os {
			ids = append(ids, o.ID)
		}
		return ids
	}
	orgs := orgIDs(must[[]api.Organization](t, "list orgs")(alice.ListOrganizations(ctx)))
	assert.Contains(t, orgs, acme.ID)
	assert.Contains(t, orgs, users["alice"].PersonalOrganizationID)
	got := must[*api.Organization](t, "get org")(alice.GetOrganization(ctx, acme.ID))
	assert.Equal(t, "acme", got.Name)
	assert.Equal(t, "Acme Corp", got.Description)
	_, err = bob.GetOrganization(ctx, acme.ID)
	wantErr(t, "outsider reads org", err, client.ErrNotFound, client.ErrForbidden)
	_, err = alice.GetOrganization(ctx, "no/such id")
	wantErr(t, "get org with a bad id", err, client.ErrNotFound, client.ErrBadRequest)

	// The organization's event stream, opened before any device exists.
	orgEvents := alice.WatchOrganization(ctx, acme.ID, client.WatchOptions{MinBackoff: 10 * time.Millisecond})
	defer orgEvents.Close()
	sync := nextOf(t, orgEvents, api.EventSync)
	assert.Equal(t, acme.ID, sync.OrganizationID)
	assert.Empty(t, sync.Devices)

	// ---- invitations ----
	inv := must[*api.Invitation](t, "invite bob")(alice.CreateInvitation(ctx, api.CreateInvitationRequest{
		OrganizationID: acme.ID, Username: "bob",
	}))
	assert.Equal(t, api.InvitationPending, inv.Status)
	assert.Equal(t, api.RoleMember, inv.Role)
	assert.Equal(t, users["bob"].User.ID, inv.UserID)
	_, err = alice.CreateInvitation(ctx, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "bob"})
	wantErr(t, "second live invitation", err, client.ErrConflict)
	_, err = bob.CreateInvitation(ctx, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "carol"})
	wantErr(t, "non-owner invites", err, client.ErrForbidden, client.ErrNotFound)
	bobInvs := must[[]api.Invitation](t, "bob lists invitations")(bob.ListInvitations(ctx))
	if assert.Len(t, bobInvs, 1) {
		assert.Equal(t, inv.ID, bobInvs[0].ID)
	}
	assert.Equal(t, acme.ID, must[*api.Invitation](t, "get invitation")(bob.GetInvitation(ctx, inv.ID)).OrganizationID)
	_, err = carol.GetInvitation(ctx, inv.ID)
	wantErr(t, "stranger reads invitation", err, client.ErrNotFound, client.ErrForbidden)
	_, err = carol.AcceptInvitation(ctx, inv.ID)
	wantErr(t, "stranger accepts", err, client.ErrNotFound, client.ErrForbidden)
	assert.Equal(t, api.InvitationAccepted, must[*api.Invitation](t, "accept")(bob.AcceptInvitation(ctx, inv.ID)).Status)
	_, err = bob.AcceptInvitation(ctx, inv.ID)
	wantErr(t, "accept twice", err, client.ErrGone)

	members := must[[]api.Member](t, "list members")(bob.ListMembers(ctx, acme.ID))
	assert.Len(t, members, 2)
	assert.True(t, slices.ContainsFunc(members, func(m api.Member) bool {
		return m.Username == "bob" && m.Role == api.RoleMember
	}), "members %+v", members)

	declined := must[*api.Invitation](t, "invite carol")(alice.CreateInvitation(ctx, api.CreateInvitationRequest{
		OrganizationID: acme.ID, Username: "carol", Role: api.RoleMember, ExpiresInSeconds: 600,
	}))
	assert.Equal(t, api.InvitationDeclined, must[*api.Invitation](t, "decline")(carol.DeclineInvitation(ctx, declined.ID)).Status)
	_, err = carol.AcceptInvitation(ctx, declined.ID)
	wantErr(t, "accept declined", err, client.ErrGone)
	revoked := must[*api.Invitation](t, "invite carol again")(alice.CreateInvitation(ctx, api.CreateInvitationRequest{
		OrganizationID: acme.ID, Username: "carol",
	}))
	require.NoError(t, alice.RevokeInvitation(ctx, revoked.ID), "revoke")
	_, err = carol.AcceptInvitation(ctx, revoked.ID)
	wantErr(t, "accept revoked", err, client.ErrGone)
	assert.Len(t, must[[]api.Invitation](t, "alice lists invitations")(alice.ListInvitations(ctx)), 3)

	// ---- registration keys ----
	single := must[*api.RegKey](t, "create single-use key")(alice.CreateRegKey(ctx, api.CreateRegKeyRequest{
		OrganizationID: acme.ID, Description: "one device", SingleUse: true, ExpiresInSeconds: 3600,
	}))
	assert.True(t, single.SingleUse)
	assert.NotNil(t, single.ExpiresAt)
	assert.True(t, strings.HasPrefix(single.Secret, api.RegKeyPrefix) && len(single.Secret) >= 8, "key secret %q", single.Secret)
	reusable := must[*api.RegKey](t, "create reusable key")(alice.CreateRegKey(ctx, api.CreateRegKeyRequest{OrganizationID: acme.ID}))
	_, err = bob.CreateRegKey(ctx, api.CreateRegKeyRequest{OrganizationID: acme.ID})
	wantErr(t, "member creates key", err, client.ErrForbidden)
	keys := must[[]api.RegKey](t, "list keys")(alice.ListRegKeys(ctx))
	assert.Len(t, keys, 2)
	for _, k := range keys {
		assert.Empty(t, k.Secret, "listed key carries its secret")
	}
	k := must[*api.RegKey](t, "get key")(alice.GetRegKey(ctx, single.ID))
	assert.Empty(t, k.Secret, "GetRegKey carries the secret")
	assert.Equal(t, "one device", k.Description)

	// ---- devices ----
	register := func(key, hostname string, eps ...api.Endpoint) (*api.Device, *client.Client) {
		t.Helper()
		priv, pub := wgKey(t)
		resp := must[*api.RegisterDeviceResponse](t, "register "+hostname)(admin.WithToken(key).RegisterDevice(ctx, api.RegisterDeviceRequest{
			PublicKey: pub, Hostname: hostname, Endpoints: eps,
		}))
		tok, err := client.OpenDeviceToken(priv, *resp)
		require.NoError(t, err, "open device token")
		_, err = client.OpenDeviceToken([32]byte{1}, *resp)
		assert.Error(t, err, "a wrong private key opened the device token")
		d := resp.Device
		assert.Equal(t, acme.ID, d.OrganizationID)
		assert.Equal(t, pub, d.PublicKey)
		assert.True(t, netip.MustParsePrefix(acme.IPv4CIDR).Contains(netip.MustParseAddr(d.TunnelIPv4)), "tunnel address %s", d.TunnelIPv4)
		return &d, admin.WithToken(tok)
	}
	dev1, dev1c := register(single.Secret, "laptop", api.Endpoint{Source: api.EndpointLocal, Address: "192.168.1.10:51820"})
	added := nextOf(t, orgEvents, api.EventDeviceAdded)
	if assert.NotNil(t, added.Device) {
		assert.Equal(t, dev1.ID, added.Device.ID)
	}
	_, pub := wgKey(t)
	_, err = admin.WithToken(single.Secret).RegisterDevice(ctx, api.RegisterDeviceRequest{PublicKey: pub, Hostname: "second"})
	wantErr(t, "reuse a single-use key", err, client.ErrGone, client.ErrUnauthorized, client.ErrForbidden)
	dev2, dev2c := register(reusable.Secret, "server")

	// The device stream of dev2, then a signal from dev1 reaches it.
	dev2Events := dev2c.WatchDevice(ctx, dev2.ID, client.WatchOptions{})
	defer dev2Events.Close()
	s := nextOf(t, dev2Events, api.EventSync)
	assert.True(t, slices.ContainsFunc(s.Devices, func(d api.Device) bool { return d.ID == dev1.ID }), "dev2's sync lacks dev1: %+v", s)
	require.NoError(t, dev1c.Signal(ctx, dev2.ID, []byte("ice offer")), "signal")
	sig := nextOf(t, dev2Events, api.EventSignal)
	require.NotNil(t, sig.Signal)
	assert.Equal(t, api.Signal{From: dev1.ID, To: dev2.ID, Payload: []byte("ice offer")}, *sig.Signal)
	_, err = dev1c.WatchDevice(ctx, dev2.ID, client.WatchOptions{}).Next(ctx)
	wantErr(t, "a device watches another's stream", err, client.ErrForbidden, client.ErrNotFound)

	assert.Len(t, must[[]api.Device](t, "peer list")(dev1c.ListDevicesInOrganization(ctx, acme.ID)), 2)
	assert.Equal(t, "laptop", must[*api.Device](t, "device gets itself")(dev1c.GetDevice(ctx, dev1.ID)).Hostname)
	host := "laptop-2"
	eps := []api.Endpoint{{Source: api.EndpointReflexive, Address: "203.0.113.7:40000"}}
	upd := must[*api.Device](t, "device updates itself")(dev1c.UpdateDevice(ctx, dev1.ID, api.UpdateDeviceRequest{Hostname: &host, Endpoints: &eps}))
	assert.Equal(t, host, upd.Hostname)
	assert.Equal(t, eps, upd.Endpoints)
	assert.Equal(t, dev1.TunnelIPv4, upd.TunnelIPv4)
	if ev := nextOf(t, dev2Events, api.EventDeviceUpdated); assert.NotNil(t, ev.Device) {
		assert.Equal(t, host, ev.Device.Hostname)
	}
	_, err = dev1c.UpdateDevice(ctx, dev2.ID, api.UpdateDeviceRequest{Hostname: &host})
	wantErr(t, "a device updates another", err, client.ErrForbidden, client.ErrNotFound)

	// Resume: remember where the org stream is, stop it, change things, resume from there.
	rev := orgEvents.Revision()
	require.NoError(t, orgEvents.Close(), "close org stream")
	assert.Len(t, must[[]api.Device](t, "list devices")(alice.ListDevices(ctx)), 2)
	personal := users["alice"].PersonalOrganizationID
	moved := must[*api.Device](t, "move device")(alice.UpdateDevice(ctx, dev2.ID, api.UpdateDeviceRequest{OrganizationID: &personal}))
	assert.Equal(t, personal, moved.OrganizationID)
	assert.NotEqual(t, dev2.TunnelIPv4, moved.TunnelIPv4)
	resumed := alice.WatchOrganization(ctx, acme.ID, client.WatchOptions{AfterRevision: rev})
	defer resumed.Close()
	ev := must[api.Event](t, "resumed stream")(resumed.Next(ctx))
	assert.Greater(t, ev.Revision, rev, "the resumed stream's first event")
	assert.NotEqual(t, api.EventSync, ev.Type, "the resumed stream's first event")
	for ev.Type != api.EventDeviceRemoved {
		ev = must[api.Event](t, "resumed stream")(resumed.Next(ctx))
	}
	if assert.NotNil(t, ev.Device) {
		assert.Equal(t, dev2.ID, ev.Device.ID)
	}
	_, err = dev1c.GetDevice(ctx, dev2.ID)
	wantErr(t, "read a device of another organization", err, client.ErrNotFound, client.ErrForbidden)
	err = dev1c.Signal(ctx, dev2.ID, []byte("x"))
	wantErr(t, "signal across organizations", err, client.ErrNotFound, client.ErrForbidden)
	_, err = bob.UpdateDevice(ctx, dev1.ID, api.UpdateDeviceRequest{OrganizationID: &personal})
	wantErr(t, "non-owner moves a device", err, client.ErrForbidden, client.ErrNotFound)

	// ---- teardown paths ----
	require.NoError(t, alice.RemoveMember(ctx, acme.ID, users["bob"].User.ID), "remove member")
	assert.NotContains(t, orgIDs(must[[]api.Organization](t, "bob lists orgs")(bob.ListOrganizations(ctx))), acme.ID,
		"bob still sees acme after removal")
	require.NoError(t, alice.DeleteRegKey(ctx, reusable.ID), "delete key")
	_, err = alice.GetRegKey(ctx, reusable.ID)
	wantErr(t, "get deleted key", err, client.ErrNotFound)
	_, pub = wgKey(t)
	_, err = admin.WithToken(reusable.Secret).RegisterDevice(ctx, api.RegisterDeviceRequest{PublicKey: pub, Hostname: "late"})
	wantErr(t, "register with a deleted key", err, client.ErrUnauthorized)
	require.NoError(t, dev1c.DeleteDevice(ctx, dev1.ID), "device deletes itself")
	_, err = alice.GetDevice(ctx, dev1.ID)
	wantErr(t, "get deleted device", err, client.ErrNotFound)
	_, err = dev1c.GetDevice(ctx, dev1.ID)
	wantErr(t, "token of a deleted device", err, client.ErrUnauthorized, client.ErrNotFound)
	require.NoError(t, alice.DeleteDevice(ctx, dev2.ID), "delete moved device")
	_, err = dev2Events.Next(ctx)
	for err == nil {
		_, err = dev2Events.Next(ctx)
	}
	var closedErr *client.ClosedError
	require.ErrorAs(t, err, &closedErr, "event stream of a deleted device")
	assert.Equal(t, api.ReasonDeviceRemoved, client.ReasonOf(err))

	require.NoError(t, alice.DeleteOrganization(ctx, acme.ID), "delete org")
	_, err = alice.GetOrganization(ctx, acme.ID)
	wantErr(t, "get deleted org", err, client.ErrNotFound)
	assert.Error(t, alice.DeleteOrganization(ctx, personal), "deleting a personal organization succeeded")
}

// TestIntegrationBadInput checks that the client surfaces the coordinator's 4xx answers as
// typed errors.
func TestIntegrationBadInput(t *testing.T) {
	url := startCoordinator(t, nil)
	ctx := t.Context()
	admin := mustClient(t, url, adminToken)
	_, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: ""})
	wantErr(t, "empty username", err, client.ErrBadRequest)
	dave, _ := newTenant(t, admin, "dave")
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
	assert.ErrorIs(t, exhausted, client.ErrPoolExhausted)
	assert.ErrorIs(t, exhausted, client.ErrConflict, "pool exhaustion is a conflict")
	_, err = dave.RegisterDevice(ctx, api.RegisterDeviceRequest{OrganizationID: tiny.ID, PublicKey: "short", Hostname: "h"})
	wantErr(t, "bad public key", err, client.ErrBadRequest)
}
