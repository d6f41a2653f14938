package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/internal/turncred"
)

// TestRelayConfig fetches relay credentials from the real coordinator with a device token and
// checks them the way a relay would; other callers and deleted devices are refused.
func TestRelayConfig(t *testing.T) {
	secret := []byte("client-test-relay-secret")
	url := startCoordinator(t, func(c *coordinator.Config) {
		c.STUNServers = []string{"192.0.2.1:3478", "192.0.2.1:3479"}
		c.TURNServers = []string{"turn:192.0.2.1:3478?transport=udp"}
		c.RelaySecret = secret
		c.RelayCredentialTTL = time.Hour
	})
	alice, u := newTenant(t, mustClient(t, url, adminToken), "alice")
	reg, dev := registerIn(t, alice, u.PersonalOrganizationID, "laptop")

	rc := must[*api.RelayConfig](t, "relay config")(dev.RelayConfig(t.Context(), reg.Device.ID))
	assert.Equal(t, []string{"192.0.2.1:3478", "192.0.2.1:3479"}, rc.STUN)
	assert.Equal(t, []string{"turn:192.0.2.1:3478?transport=udp"}, rc.TURN)
	within := time.Until(rc.ExpiresAt)
	assert.Positive(t, within, "ExpiresAt is not within the TTL")
	assert.LessOrEqual(t, within, time.Hour, "ExpiresAt is not within the TTL")
	id, err := turncred.Verify(secret, rc.Username, rc.Password, time.Now())
	require.NoError(t, err)
	assert.Equal(t, reg.Device.ID, id)

	_, err = alice.RelayConfig(t.Context(), reg.Device.ID)
	wantErr(t, "user token", err, client.ErrForbidden)
	require.NoError(t, alice.DeleteDevice(t.Context(), reg.Device.ID), "delete device")
	_, err = dev.RelayConfig(t.Context(), reg.Device.ID)
	wantErr(t, "deleted device", err, client.ErrUnauthorized)
}

// TestOrgRelaysAndRelayEvents sets an organization's relays through the typed methods and
// follows a device's stream: relay events arrive with Revision 0, leave the stream's revision
// alone, survive a reconnect without duplicates, and follow relay changes.
func TestOrgRelaysAndRelayEvents(t *testing.T) {
	secret := []byte("client-test-relay-secret")
	const orgSecret = "client-test-organization-secret"
	defaultTURN := []string{"turn:192.0.2.1:3478?transport=udp"}
	url := startCoordinator(t, func(c *coordinator.Config) {
		c.TURNServers = defaultTURN
		c.RelaySecret = secret
		c.SealKey = make([]byte, 32)
	})
	alice, u := newTenant(t, mustClient(t, url, adminToken), "alice")
	org := u.PersonalOrganizationID
	reg, dev := registerIn(t, alice, org, "laptop")
	peer, _ := registerIn(t, alice, org, "peer")

	_, err := alice.GetOrgRelays(t.Context(), org)
	wantErr(t, "relays before any", err, client.ErrNotFound)
	orgTURN := []string{"turn:198.51.100.9:3478?transport=udp"}
	set := must[*api.OrgRelays](t, "set relays")(alice.SetOrgRelays(t.Context(), org, api.SetOrgRelaysRequest{TURN: orgTURN, Secret: orgSecret}))
	assert.Equal(t, orgTURN, set.TURN)
	got := must[*api.OrgRelays](t, "get relays")(alice.GetOrgRelays(t.Context(), org))
	assert.Equal(t, orgTURN, got.TURN)
	assert.Equal(t, org, got.OrganizationID)
	_, err = alice.SetOrgRelays(t.Context(), org, api.SetOrgRelaysRequest{TURN: []string{"turn:x"}, Secret: orgSecret})
	wantErr(t, "bad TURN URL", err, client.ErrBadRequest)
	_, err = dev.GetOrgRelays(t.Context(), org)
	wantErr(t, "device token", err, client.ErrForbidden)

	next := func(s *client.EventStream) api.Event {
		t.Helper()
		c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		ev, err := s.Next(c)
		require.NoError(t, err, "next event")
		return ev
	}
	verify := func(ev api.Event, key []byte, turn []string) {
		t.Helper()
		require.Equal(t, api.EventRelay, ev.Type)
		require.Zero(t, ev.Revision)
		require.NotNil(t, ev.Relay)
		require.Equal(t, turn, ev.Relay.TURN)
		id, err := turncred.Verify(key, ev.Relay.Username, ev.Relay.Password, time.Now())
		require.NoError(t, err, "pushed credentials")
		require.Equal(t, reg.Device.ID, id, "pushed credentials")
	}

	s := dev.WatchDevice(t.Context(), reg.Device.ID, client.WatchOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	defer s.Close()
	sync := next(s)
	require.Equal(t, api.EventSync, sync.Type)
	require.NotZero(t, sync.Revision)
	verify(next(s), []byte(orgSecret), orgTURN)
	require.Equal(t, sync.Revision, s.Revision(), "Revision after a relay event")

	require.NoError(t, alice.ClearOrgRelays(t.Context(), org), "clear relays")
	verify(next(s), secret, defaultTURN)
	wantErr(t, "clear twice", alice.ClearOrgRelays(t.Context(), org), client.ErrNotFound)

	require.NoError(t, alice.DeleteDevice(t.Context(), peer.Device.ID), "delete peer")
	removed := next(s)
	require.Equal(t, api.EventDeviceRemoved, removed.Type)
	require.Greater(t, removed.Revision, sync.Revision)
	require.Equal(t, removed.Revision, s.Revision())

	// A reconnect resumes after device.removed: nothing replayed, a fresh relay event.
	s.Reconnect()
	verify(next(s), secret, defaultTURN)
	assert.Equal(t, removed.Revision, s.Revision(), "Revision after reconnecting")
}
