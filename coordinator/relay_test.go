package coordinator

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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

func relayPath(id string) string { return devicePath(id, "/relay") }

// relayFor fetches a device's relay configuration.
func (e *env) relayFor(d device) api.RelayConfig {
	e.t.Helper()
	var rc api.RelayConfig
	e.call("GET", relayPath(d.ID), d.Token, nil, 200, &rc)
	return rc
}

// verifies checks that rc's TURN credentials verify under secret now, for deviceID.
func verifies(t *testing.T, secret []byte, rc api.RelayConfig, deviceID, what string) {
	t.Helper()
	id, err := turncred.Verify(secret, rc.Username, rc.Password, time.Now())
	if assert.NoError(t, err, "%s: credentials", what) {
		assert.Equal(t, deviceID, id, "%s: credentials' device", what)
	}
}

func TestDeviceRelayConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, withRelay)
		alice := e.newUser("alice")
		k := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{})
		d1 := e.register(k.Secret, "", "d1", newKey(t), 201)
		d2 := e.register(k.Secret, "", "d2", newKey(t), 201)

		rc := e.relayFor(d1)
		require.Equal(t, e.cfg.STUNServers, rc.STUN)
		require.Equal(t, e.cfg.TURNServers, rc.TURN)
		assert.WithinDuration(t, time.Now().Add(2*time.Hour), rc.ExpiresAt, 0)
		verifies(t, relaySecret, rc, d1.ID, "default relays")
		exp, _, err := turncred.Parse(rc.Username)
		require.NoError(t, err)
		assert.WithinDuration(t, rc.ExpiresAt, exp, 0, "username expiry")
		_, err = turncred.Verify(relaySecret, rc.Username, rc.Password, time.Now().Add(2*time.Hour+time.Second))
		assert.ErrorIs(t, err, turncred.ErrExpired, "after the TTL")

		// Fresh credentials on every call, following the clock.
		time.Sleep(time.Hour)
		rc2 := e.relayFor(d1)
		assert.True(t, rc2.ExpiresAt.After(rc.ExpiresAt), "second fetch expires later")
		assert.NotEqual(t, rc.Username, rc2.Username)

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
			t.Log(tc.name)
			e.fails(tc.status, tc.code, "GET", relayPath(d1.ID), tc.token, nil)
		}
		// A device of another organization: 404, as if d1 did not exist.
		bob := e.newUser("bob")
		kb := e.newRegKey(bob, bob.PersonalOrg, api.CreateRegKeyRequest{})
		db := e.register(kb.Secret, "", "db", newKey(t), 201)
		e.fails(404, api.CodeNotFound, "GET", relayPath(d1.ID), db.Token, nil)
		e.fails(400, "", "GET", relayPath("not-an-id"), d1.Token, nil)
		e.fails(405, "", "POST", relayPath(d1.ID), d1.Token, nil)

		// A deleted device's token no longer works.
		e.call("DELETE", devicePath(d2.ID, ""), alice.Token, nil, 204, nil)
		e.fails(401, api.CodeUnauthorized, "GET", relayPath(d2.ID), d2.Token, nil)
	})
}

// TestRelayConfigRemovedFromOrganization: a member's device goes when the member is removed
// from the organization, and with it the device's access to relay credentials.
func TestRelayConfigRemovedFromOrganization(t *testing.T) {
	e := newEnv(t, withRelay)
	alice, bob := e.newUser("alice"), e.newUser("bob")
	acme := e.newOrg(alice, "acme", "")
	e.invite(alice, bob, acme.ID, "")
	d := e.register(bob.Token, acme.ID, "bobs-pc", newKey(t), 201)
	e.relayFor(d)
	e.call("DELETE", orgPath(acme.ID, "/members/"+bob.ID), alice.Token, nil, 204, nil)
	e.fails(401, api.CodeUnauthorized, "GET", relayPath(d.ID), d.Token, nil)
}

// TestRelayConfigMovedDevice: a device its owner moves to another organization keeps its
// identity and keeps getting credentials for it.
func TestRelayConfigMovedDevice(t *testing.T) {
	e := newEnv(t, withRelay)
	alice := e.newUser("alice")
	acme := e.newOrg(alice, "acme", "")
	d := e.register(alice.Token, alice.PersonalOrg, "laptop", newKey(t), 201)
	e.call("PATCH", devicePath(d.ID, ""), alice.Token, api.UpdateDeviceRequest{OrganizationID: &acme.ID}, 200, nil)
	verifies(t, relaySecret, e.relayFor(d), d.ID, "moved device")
}

func TestRelayConfigWithoutSecret(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.STUNServers = []string{"stun.example.com:3478"} })
	alice := e.newUser("alice")
	d := e.register(alice.Token, alice.PersonalOrg, "laptop", newKey(t), 201)
	assert.Equal(t, api.RelayConfig{STUN: []string{"stun.example.com:3478"}}, e.relayFor(d))
}

func TestRelayConfigValidation(t *testing.T) {
	st, err := sqlite.Open(context.Background(), t.TempDir()+"/c.db")
	require.NoError(t, err)
	defer st.Close()
	for name, f := range map[string]func(*Config){
		"turn without secret": func(c *Config) { c.TURNServers = []string{"turn:1.2.3.4:3478"} },
		"bad turn url":        func(c *Config) { c.RelaySecret = relaySecret; c.TURNServers = []string{"1.2.3.4:3478"} },
		"bad stun server":     func(c *Config) { c.STUNServers = []string{"1.2.3.4"} },
		"negative ttl":        func(c *Config) { c.RelayCredentialTTL = -time.Second },
	} {
		cfg := Config{Store: st}
		f(&cfg)
		if s, err := New(context.Background(), cfg); !assert.Error(t, err, name) {
			_ = s.Close()
		}
	}
}

const orgSecret = "organization-relay-secret-0123456789"

var (
	orgTURN = []string{"turn:203.0.113.7:3478?transport=udp", "turns:relay.acme.example:5349?transport=tcp"}
	orgSTUN = []string{"203.0.113.7:3478"}
	sealKey = bytes.Repeat([]byte{0x5a}, 32)
)

func orgRelaysPath(orgID string) string { return orgPath(orgID, "/relays") }

func orgRelaysReq() api.SetOrgRelaysRequest {
	return api.SetOrgRelaysRequest{TURN: orgTURN, STUN: orgSTUN, Secret: orgSecret}
}

func withSealKey(c *Config) { c.SealKey = sealKey }

// TestOrgRelaysSetGetClear: an owner sets, reads and clears the organization's relays; members
// read them; the secret never comes back; bad input gets 4xx.
func TestOrgRelaysSetGetClear(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, withRelay, withSealKey)
		alice, bob, carol := e.newUser("alice"), e.newUser("bob"), e.newUser("carol")
		acme := e.newOrg(alice, "acme", "")
		e.invite(alice, bob, acme.ID, "")
		path := orgRelaysPath(acme.ID)

		e.fails(404, api.CodeNotFound, "GET", path, alice.Token, nil)
		// Duplicates are dropped.
		req := orgRelaysReq()
		req.TURN = append(slices.Clone(req.TURN), req.TURN[0])
		st, body := e.do("PUT", path, alice.Token, req)
		require.Equal(t, 200, st, "PUT: %s", body)
		require.NotContains(t, string(body), "secret")
		var set api.OrgRelays
		e.call("PUT", path, alice.Token, orgRelaysReq(), 200, &set)
		require.Equal(t, api.OrgRelays{OrganizationID: acme.ID, STUN: orgSTUN, TURN: orgTURN, UpdatedAt: set.UpdatedAt}, set)
		require.WithinDuration(t, time.Now(), set.UpdatedAt, 0)
		for _, who := range []user{alice, bob} {
			st, body := e.do("GET", path, who.Token, nil)
			require.Equal(t, 200, st, "GET as %s", who.Name)
			require.NotContains(t, string(body), orgSecret, "GET as %s", who.Name)
			var got api.OrgRelays
			e.call("GET", path, who.Token, nil, 200, &got)
			assert.Equal(t, set, got, "GET as %s", who.Name)
		}
		// Without STUN servers: an empty list, not null.
		st, body = e.do("PUT", path, alice.Token, api.SetOrgRelaysRequest{TURN: orgTURN[:1], Secret: orgSecret})
		assert.Equal(t, 200, st)
		assert.Contains(t, string(body), `"stun":[]`, "PUT without STUN")

		// Who may do what.
		for _, tc := range []struct {
			name, method, token string
			status              int
		}{
			{"member sets", "PUT", bob.Token, 403},
			{"member clears", "DELETE", bob.Token, 403},
			{"outsider sets", "PUT", carol.Token, 404},
			{"outsider reads", "GET", carol.Token, 404},
			{"outsider clears", "DELETE", carol.Token, 404},
			{"admin reads", "GET", adminToken, 403},
		} {
			var b any
			if tc.method == "PUT" {
				b = orgRelaysReq()
			}
			t.Log(tc.name)
			e.fails(tc.status, "", tc.method, path, tc.token, b)
		}

		// Validation.
		long := strings.Repeat("a", 250)
		turn := func(u string) api.SetOrgRelaysRequest {
			return api.SetOrgRelaysRequest{TURN: []string{u}, Secret: orgSecret}
		}
		for _, tc := range []struct {
			name   string
			body   any
			status int
		}{
			{"no turn", api.SetOrgRelaysRequest{Secret: orgSecret}, 400},
			{"no secret", api.SetOrgRelaysRequest{TURN: orgTURN}, 400},
			{"short secret", api.SetOrgRelaysRequest{TURN: orgTURN, Secret: "short"}, 400},
			{"secret with space", api.SetOrgRelaysRequest{TURN: orgTURN, Secret: "a secret with spaces in it"}, 400},
			{"long secret", api.SetOrgRelaysRequest{TURN: orgTURN, Secret: strings.Repeat("s", api.MaxRelaySecret+1)}, 400},
			{"stun scheme", turn("stun:1.2.3.4:3478?transport=udp"), 400},
			{"http scheme", turn("http://1.2.3.4:3478"), 400},
			{"no transport", turn("turn:1.2.3.4:3478"), 400},
			{"bad transport", turn("turn:1.2.3.4:3478?transport=sctp"), 400},
			{"extra query", turn("turn:1.2.3.4:3478?transport=udp&x=1"), 400},
			{"no port", turn("turn:1.2.3.4?transport=udp"), 400},
			{"port zero", turn("turn:1.2.3.4:0?transport=udp"), 400},
			{"port too big", turn("turn:1.2.3.4:65536?transport=udp"), 400},
			{"no host", turn("turn::3478?transport=udp"), 400},
			{"userinfo", turn("turn:user@1.2.3.4:3478?transport=udp"), 400},
			{"bare ipv6", turn("turn:2001:db8::1:3478?transport=udp"), 400},
			{"unspecified", turn("turn:0.0.0.0:3478?transport=udp"), 400},
			{"long url", turn("turn:" + long + ".example:3478?transport=udp"), 400},
			{"too many", api.SetOrgRelaysRequest{TURN: slices.Repeat(orgTURN[:1], api.MaxRelayServers+1), Secret: orgSecret}, 400},
			{"bad stun", api.SetOrgRelaysRequest{TURN: orgTURN, STUN: []string{"1.2.3.4"}, Secret: orgSecret}, 400},
			{"stun url", api.SetOrgRelaysRequest{TURN: orgTURN, STUN: []string{"stun:1.2.3.4:3478"}, Secret: orgSecret}, 400},
			{"unknown field", `{"turn":["turn:1.2.3.4:3478?transport=udp"],"secret":"` + orgSecret + `","color":"red"}`, 400},
			{"malformed", `{"turn":`, 400},
			{"empty", ``, 400},
			{"oversized", `{"secret":"` + strings.Repeat("a", api.MaxRequestBody) + `"}`, 413},
			{"ipv6", turn("turn:[2001:db8::1]:3478?transport=udp"), 200},
			{"turns with a name", turn("turns:relay.example.com:443?transport=tcp"), 200},
			{"tcp", turn("turn:10.0.0.1:3478?transport=tcp"), 200},
		} {
			st, _ := e.errCode("PUT", path, alice.Token, tc.body)
			assert.Equal(t, tc.status, st, tc.name)
		}
		e.fails(400, "", "PUT", orgRelaysPath("not-an-id"), alice.Token, orgRelaysReq())
		e.fails(405, "", "POST", path, alice.Token, orgRelaysReq())

		e.call("DELETE", path, alice.Token, nil, 204, nil)
		e.fails(404, api.CodeNotFound, "GET", path, bob.Token, nil)
		e.fails(404, "", "DELETE", path, alice.Token, nil)
	})
}

// TestOrgRelaysCredentials: devices of an organization with its own relays get its servers and
// credentials that verify against its secret, not the coordinator's; other organizations keep
// the default; the secret is not stored in plaintext; it all survives a restart; a wrong
// SealKey fails closed.
func TestOrgRelaysCredentials(t *testing.T) {
	e := newEnv(t, withRelay, withSealKey)
	alice, bob := e.newUser("alice"), e.newUser("bob")
	acme := e.newOrg(alice, "acme", "")
	da := e.register(alice.Token, acme.ID, "da", newKey(t), 201)
	db := e.register(bob.Token, bob.PersonalOrg, "db", newKey(t), 201)
	e.call("PUT", orgRelaysPath(acme.ID), alice.Token, orgRelaysReq(), 200, nil)

	check := func(when string) {
		t.Helper()
		rc := e.relayFor(da)
		assert.Equal(t, orgTURN, rc.TURN, when)
		assert.Equal(t, orgSTUN, rc.STUN, when)
		verifies(t, []byte(orgSecret), rc, da.ID, when+": organization's")
		_, err := turncred.Verify(relaySecret, rc.Username, rc.Password, time.Now())
		assert.ErrorIs(t, err, turncred.ErrInvalid, "%s: organization's credentials under the default secret", when)
		other := e.relayFor(db)
		assert.Equal(t, e.cfg.TURNServers, other.TURN, when)
		assert.Equal(t, e.cfg.STUNServers, other.STUN, when)
		verifies(t, relaySecret, other, db.ID, when+": default")
	}
	check("after set")

	// Sealed at rest: the database files never hold the secret.
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(e.path + suffix)
		if !errors.Is(err, os.ErrNotExist) {
			require.NoError(t, err)
		}
		assert.False(t, bytes.Contains(b, []byte(orgSecret)), "database file %s holds the relay secret in plaintext", e.path+suffix)
	}

	e.restart()
	check("after restart")
	var got api.OrgRelays
	e.call("GET", orgRelaysPath(acme.ID), alice.Token, nil, 200, &got)
	assert.Equal(t, orgTURN, got.TURN, "after restart")

	// Another SealKey cannot open it: 500 rather than the default relays or garbage.
	e.cfg.SealKey = bytes.Repeat([]byte{1}, 32)
	e.restart()
	e.fails(500, api.CodeInternal, "GET", relayPath(da.ID), da.Token, nil)
	// Setting it again under the new key heals it; clearing goes back to the default.
	e.call("PUT", orgRelaysPath(acme.ID), alice.Token, orgRelaysReq(), 200, nil)
	check("after re-set")
	e.call("DELETE", orgRelaysPath(acme.ID), alice.Token, nil, 204, nil)
	rc := e.relayFor(da)
	assert.Equal(t, e.cfg.TURNServers, rc.TURN, "after clear")
	verifies(t, relaySecret, rc, da.ID, "after clear")
}

// TestOrgRelaysWithoutSealKey: without a SealKey the secret is stored as given and works; a
// coordinator without default relays still serves organization relays.
func TestOrgRelaysWithoutSealKey(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	d := e.register(alice.Token, alice.PersonalOrg, "d", newKey(t), 201)
	require.Equal(t, api.RelayConfig{}, e.relayFor(d), "no relays anywhere")
	e.call("PUT", orgRelaysPath(alice.PersonalOrg), alice.Token, orgRelaysReq(), 200, nil)
	rc := e.relayFor(d)
	assert.Equal(t, orgTURN, rc.TURN)
	verifies(t, []byte(orgSecret), rc, d.ID, "organization relays without a SealKey")
	// Adding a SealKey later keeps unsealed secrets readable.
	e.cfg.SealKey = sealKey
	e.restart()
	verifies(t, []byte(orgSecret), e.relayFor(d), d.ID, "unsealed secret after adding a SealKey")
}

func TestSealSecret(t *testing.T) {
	sealer, err := newSealer(sealKey)
	require.NoError(t, err)
	s := &Server{sealer: sealer}
	stored := s.sealSecret("org-1", []byte(orgSecret))
	require.EqualValues(t, secretSealed, stored[0])
	require.False(t, bytes.Contains(stored, []byte(orgSecret)), "sealed form %x", stored)
	assert.NotEqual(t, stored, s.sealSecret("org-1", []byte(orgSecret)), "sealing twice gave the same bytes (nonce reuse)")
	got, err := s.openSecret("org-1", stored)
	require.NoError(t, err)
	require.Equal(t, orgSecret, string(got))
	_, err = s.openSecret("org-2", stored)
	assert.ErrorIs(t, err, ErrSealed, "opened under another organization")
	tampered := slices.Clone(stored)
	tampered[len(tampered)-1] ^= 1
	for name, b := range map[string][]byte{"tampered": tampered, "truncated": stored[:10], "empty": nil, "unknown format": {9, 1, 2}} {
		_, err := s.openSecret("org-1", b)
		assert.ErrorIs(t, err, ErrSealed, name)
	}
	_, err = (&Server{}).openSecret("org-1", stored)
	assert.ErrorIs(t, err, ErrSealed, "without a key")
	_, err = newSealer(make([]byte, 16))
	assert.Error(t, err, "16-byte SealKey")
}

// relayEvent waits for the next relay event on s that ok accepts, skipping others, until the
// deadline; it returns the event and when it came.
func (s *sse) relayEvent(deadline time.Duration, what string, ok func(api.RelayConfig) bool) (api.RelayConfig, time.Time) {
	s.t.Helper()
	timeout := time.After(deadline)
	for {
		select {
		case ev, open := <-s.ch:
			require.True(s.t, open, "%s: stream ended", what)
			if ev.Type != api.EventRelay {
				continue
			}
			require.Empty(s.t, ev.ID, "%s: relay event with an id", what)
			require.Zero(s.t, ev.Event.Revision, "%s: relay event with a revision", what)
			require.NotNil(s.t, ev.Event.Relay, what)
			if ok(*ev.Event.Relay) {
				return *ev.Event.Relay, time.Now()
			}
		case <-timeout:
			s.t.Fatalf("%s: no such relay event within %s", what, deadline)
		}
	}
}

// TestRelayEventsOnStream: a device's stream brings relay events after connecting, at half the
// credentials' lifetime and at once when the organization's relays change; they carry no
// revision, so resuming from the last logged revision still works.
func TestRelayEventsOnStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 6 * time.Second
		e := newEnv(t, withRelay, withSealKey, func(c *Config) { c.RelayCredentialTTL = ttl })
		alice, bob := e.newUser("alice"), e.newUser("bob")
		d := e.register(alice.Token, alice.PersonalOrg, "d", newKey(t), 201)
		peer := e.register(alice.Token, alice.PersonalOrg, "peer", newKey(t), 201)
		other := e.register(bob.Token, bob.PersonalOrg, "other", newKey(t), 201)
		defaults := func(rc api.RelayConfig) bool { return slices.Equal(rc.TURN, e.cfg.TURNServers) }
		org := func(rc api.RelayConfig) bool { return slices.Equal(rc.TURN, orgTURN) }

		s := e.openStream(devicePath(d.ID, "/events"), d.Token, "")
		defer s.close()
		sync := s.next()
		require.Equal(t, api.EventSync, sync.Type)
		require.NotEmpty(t, sync.ID)
		start := time.Now()
		rc1, at := s.relayEvent(time.Millisecond, "right after the sync", defaults)
		require.Equal(t, start, at)
		verifies(t, relaySecret, rc1, d.ID, "pushed")
		os2 := e.openStream(devicePath(other.ID, "/events"), other.Token, "")
		defer os2.close()
		os2.next() // sync
		os2.relayEvent(time.Second, "other org's first relay event", defaults)

		// Renewed at half their lifetime.
		rc2, at := s.relayEvent(ttl, "renewal", defaults)
		assert.Equal(t, ttl/2, at.Sub(start), "renewal after")
		assert.Equal(t, ttl/2, rc2.ExpiresAt.Sub(rc1.ExpiresAt), "renewed expiry")
		verifies(t, relaySecret, rc2, d.ID, "renewed")

		// The organization's relays change: pushed at once.
		e.call("PUT", orgRelaysPath(alice.PersonalOrg), alice.Token, orgRelaysReq(), 200, nil)
		changed := time.Now()
		rc3, at := s.relayEvent(time.Second, "relay change", org)
		assert.Equal(t, changed, at, "relay change pushed after")
		verifies(t, []byte(orgSecret), rc3, d.ID, "organization's")
		assert.Equal(t, orgSTUN, rc3.STUN)
		// Other organizations are not told anything new: their next relay event is a renewal
		// of the default.
		os2.relayEvent(ttl, "other org's renewal", defaults)

		// Log events still flow with their revisions and the relay events did not disturb them.
		e.call("DELETE", devicePath(peer.ID, ""), alice.Token, nil, 204, nil)
		removed := s.nextOf(api.EventDeviceRemoved)
		assert.Greater(t, mustRev(t, removed.ID), mustRev(t, sync.ID), "device.removed after the sync")

		// Clearing goes back to the default, at once.
		e.call("DELETE", orgRelaysPath(alice.PersonalOrg), alice.Token, nil, 204, nil)
		s.relayEvent(time.Millisecond, "relay clear", defaults)
		s.close()

		// Resume from the last logged revision: no sync (nothing was missed), nothing replayed,
		// a fresh relay event.
		r := e.openStream(devicePath(d.ID, "/events"), d.Token, removed.ID)
		defer r.close()
		ev := r.next()
		require.Equal(t, api.EventRelay, ev.Type, "first event of the resumed stream")
		require.Empty(t, ev.ID)
		require.True(t, defaults(*ev.Event.Relay))
		// And a resume from the sync's revision replays the log, not the relay events.
		r2 := e.openStream(devicePath(d.ID, "/events"), d.Token, sync.ID)
		defer r2.close()
		var types []string
		for len(types) == 0 || types[len(types)-1] != api.EventRelay {
			types = append(types, r2.next().Type)
		}
		assert.Equal(t, []string{api.EventDeviceRemoved, api.EventRelay}, types, "resumed from the sync")
	})
}

func mustRev(t *testing.T, id string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(id, 10, 64)
	require.NoError(t, err, "revision %q", id)
	return n
}

// TestRelayEventsNotWithoutRelays: a coordinator without relays sends no relay events, and
// an organization stream never carries them.
func TestRelayEventsNotWithoutRelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const heartbeat = 50 * time.Millisecond
		e := newEnv(t, func(c *Config) { c.Heartbeat = heartbeat })
		alice := e.newUser("alice")
		d := e.register(alice.Token, alice.PersonalOrg, "d", newKey(t), 201)
		s := e.openStream(devicePath(d.ID, "/events"), d.Token, "")
		defer s.close()
		o := e.openStream(orgPath(alice.PersonalOrg, "/events"), alice.Token, "")
		defer o.close()
		require.Equal(t, api.EventSync, s.next().Type)
		o.next()
		// The organization gets relays: the device's stream is told, the organization's is not.
		e.call("PUT", orgRelaysPath(alice.PersonalOrg), alice.Token, orgRelaysReq(), 200, nil)
		ev := s.next()
		require.Equal(t, api.EventRelay, ev.Type, "after set")
		require.Equal(t, orgTURN, ev.Event.Relay.TURN)
		// Cleared: the device is told there are none now.
		e.call("DELETE", orgRelaysPath(alice.PersonalOrg), alice.Token, nil, 204, nil)
		ev = s.next()
		require.Equal(t, api.EventRelay, ev.Type, "after clear")
		require.Equal(t, api.RelayConfig{}, *ev.Event.Relay)
		// Heartbeats pass; neither stream has anything more to say.
		time.Sleep(3 * heartbeat)
		synctest.Wait()
		s.quiet("device stream")
		o.quiet("organization stream")
		assert.GreaterOrEqual(t, o.pings.Load(), int64(3), "heartbeats on the organization stream")
	})
}
