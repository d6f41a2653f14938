package client_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
	"github.com/nexodus-sdk/nexodus/internal/turncred"
)

// TestRelayConfig fetches relay credentials from the real coordinator with a device token and
// checks them the way a relay would; other callers and deleted devices are refused.
func TestRelayConfig(t *testing.T) {
	secret := []byte("client-test-relay-secret")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "coordinator.db"))
	if err != nil {
		t.Fatal(err)
	}
	coord, err := coordinator.New(ctx, coordinator.Config{
		Store: st, AdminToken: adminToken, Logger: slog.New(slog.DiscardHandler),
		STUNServers:        []string{"192.0.2.1:3478", "192.0.2.1:3479"},
		TURNServers:        []string{"turn:192.0.2.1:3478?transport=udp"},
		RelaySecret:        secret,
		RelayCredentialTTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(coord)
	t.Cleanup(func() {
		_ = coord.Close()
		srv.Close()
		_ = st.Close()
	})

	admin := mustClient(t, srv.URL, adminToken)
	u := must[*api.CreateUserResponse](t, "create user")(admin.CreateUser(t.Context(), api.CreateUserRequest{Username: "alice"}))
	tok := must[*api.Token](t, "create token")(admin.CreateToken(t.Context(), u.User.ID, api.CreateTokenRequest{}))
	alice := admin.WithToken(tok.Secret)
	priv, pub := wgKey(t)
	reg := must[*api.RegisterDeviceResponse](t, "register")(alice.RegisterDevice(t.Context(), api.RegisterDeviceRequest{
		OrganizationID: u.PersonalOrganizationID, PublicKey: pub, Hostname: "laptop",
	}))
	devTok, err := client.OpenDeviceToken(priv, *reg)
	if err != nil {
		t.Fatal(err)
	}
	dev := admin.WithToken(devTok)

	rc := must[*api.RelayConfig](t, "relay config")(dev.RelayConfig(t.Context(), reg.Device.ID))
	if len(rc.STUN) != 2 || len(rc.TURN) != 1 || rc.TURN[0] != "turn:192.0.2.1:3478?transport=udp" {
		t.Errorf("servers %+v", rc)
	}
	if d := time.Until(rc.ExpiresAt); d <= 0 || d > time.Hour {
		t.Errorf("ExpiresAt %v is not within the TTL", rc.ExpiresAt)
	}
	if id, err := turncred.Verify(secret, rc.Username, rc.Password, time.Now()); err != nil || id != reg.Device.ID {
		t.Errorf("credentials verify as %q, %v", id, err)
	}

	_, err = alice.RelayConfig(t.Context(), reg.Device.ID)
	wantErr(t, "user token", err, client.ErrForbidden)
	check(t, "delete device", alice.DeleteDevice(t.Context(), reg.Device.ID))
	_, err = dev.RelayConfig(t.Context(), reg.Device.ID)
	wantErr(t, "deleted device", err, client.ErrUnauthorized)
}

// TestOrgRelaysAndRelayEvents sets an organization's relays through the typed methods and
// follows a device's stream: relay events arrive with Revision 0, leave the stream's revision
// alone, survive a reconnect without duplicates, and follow relay changes.
func TestOrgRelaysAndRelayEvents(t *testing.T) {
	secret := []byte("client-test-relay-secret")
	const orgSecret = "client-test-organization-secret"
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "coordinator.db"))
	if err != nil {
		t.Fatal(err)
	}
	coord, err := coordinator.New(ctx, coordinator.Config{
		Store: st, AdminToken: adminToken, Logger: slog.New(slog.DiscardHandler),
		TURNServers: []string{"turn:192.0.2.1:3478?transport=udp"}, RelaySecret: secret,
		SealKey: make([]byte, 32),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(coord)
	t.Cleanup(func() {
		_ = coord.Close()
		srv.Close()
		_ = st.Close()
	})
	admin := mustClient(t, srv.URL, adminToken)
	u := must[*api.CreateUserResponse](t, "create user")(admin.CreateUser(t.Context(), api.CreateUserRequest{Username: "alice"}))
	tok := must[*api.Token](t, "create token")(admin.CreateToken(t.Context(), u.User.ID, api.CreateTokenRequest{}))
	alice := admin.WithToken(tok.Secret)
	org := u.PersonalOrganizationID
	register := func(host string) (*api.RegisterDeviceResponse, *client.Client) {
		priv, pub := wgKey(t)
		reg := must[*api.RegisterDeviceResponse](t, "register")(alice.RegisterDevice(t.Context(), api.RegisterDeviceRequest{
			OrganizationID: org, PublicKey: pub, Hostname: host,
		}))
		devTok, err := client.OpenDeviceToken(priv, *reg)
		if err != nil {
			t.Fatal(err)
		}
		return reg, admin.WithToken(devTok)
	}
	reg, dev := register("laptop")
	peer, _ := register("peer")

	_, err = alice.GetOrgRelays(t.Context(), org)
	wantErr(t, "relays before any", err, client.ErrNotFound)
	orgTURN := []string{"turn:198.51.100.9:3478?transport=udp"}
	set := must[*api.OrgRelays](t, "set relays")(alice.SetOrgRelays(t.Context(), org, api.SetOrgRelaysRequest{TURN: orgTURN, Secret: orgSecret}))
	got := must[*api.OrgRelays](t, "get relays")(alice.GetOrgRelays(t.Context(), org))
	if !slices.Equal(set.TURN, orgTURN) || !slices.Equal(got.TURN, orgTURN) || got.OrganizationID != org {
		t.Fatalf("set %+v, got %+v", set, got)
	}
	_, err = alice.SetOrgRelays(t.Context(), org, api.SetOrgRelaysRequest{TURN: []string{"turn:x"}, Secret: orgSecret})
	wantErr(t, "bad TURN URL", err, client.ErrBadRequest)
	_, err = dev.GetOrgRelays(t.Context(), org)
	wantErr(t, "device token", err, client.ErrForbidden)

	next := func(s *client.EventStream) api.Event {
		t.Helper()
		c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		ev, err := s.Next(c)
		if err != nil {
			t.Fatalf("next event: %v", err)
		}
		return ev
	}
	verify := func(ev api.Event, key []byte, turn []string) {
		t.Helper()
		if ev.Type != api.EventRelay || ev.Revision != 0 || ev.Relay == nil || !slices.Equal(ev.Relay.TURN, turn) {
			t.Fatalf("want a relay event with %v, got %+v", turn, ev)
		}
		if id, err := turncred.Verify(key, ev.Relay.Username, ev.Relay.Password, time.Now()); err != nil || id != reg.Device.ID {
			t.Fatalf("pushed credentials verify as %q, %v", id, err)
		}
	}

	s := dev.WatchDevice(t.Context(), reg.Device.ID, client.WatchOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	defer s.Close()
	sync := next(s)
	if sync.Type != api.EventSync || sync.Revision == 0 {
		t.Fatalf("first event %+v", sync)
	}
	verify(next(s), []byte(orgSecret), orgTURN)
	if s.Revision() != sync.Revision {
		t.Fatalf("Revision %d after a relay event, want the sync's %d", s.Revision(), sync.Revision)
	}

	check(t, "clear relays", alice.ClearOrgRelays(t.Context(), org))
	verify(next(s), secret, []string{"turn:192.0.2.1:3478?transport=udp"})
	wantErr(t, "clear twice", alice.ClearOrgRelays(t.Context(), org), client.ErrNotFound)

	check(t, "delete peer", alice.DeleteDevice(t.Context(), peer.Device.ID))
	removed := next(s)
	if removed.Type != api.EventDeviceRemoved || removed.Revision <= sync.Revision || s.Revision() != removed.Revision {
		t.Fatalf("after the relay events: %+v, Revision %d", removed, s.Revision())
	}

	// A reconnect resumes after device.removed: nothing replayed, a fresh relay event.
	s.Reconnect()
	ev := next(s)
	verify(ev, secret, []string{"turn:192.0.2.1:3478?transport=udp"})
	if s.Revision() != removed.Revision {
		t.Errorf("Revision %d after reconnecting, want %d", s.Revision(), removed.Revision)
	}
}
