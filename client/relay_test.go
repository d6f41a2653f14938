package client_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
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
