package coordinator

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/internal/turncred"
)

const orgSecret = "organization-relay-secret-0123456789"

var (
	orgTURN = []string{"turn:203.0.113.7:3478?transport=udp", "turns:relay.acme.example:5349?transport=tcp"}
	orgSTUN = []string{"203.0.113.7:3478"}
	sealKey = bytes.Repeat([]byte{0x5a}, 32)
)

func orgRelaysPath(orgID string) string { return "/api/v1/organizations/" + orgID + "/relays" }

func orgRelaysReq() api.SetOrgRelaysRequest {
	return api.SetOrgRelaysRequest{TURN: orgTURN, STUN: orgSTUN, Secret: orgSecret}
}

func withSealKey(c *Config) { c.SealKey = sealKey }

// TestOrgRelaysSetGetClear: an owner sets, reads and clears the organization's relays; members
// read them; the secret never comes back; bad input gets 4xx.
func TestOrgRelaysSetGetClear(t *testing.T) {
	e := newEnv(t, withRelay, withSealKey)
	alice, bob, carol := e.newUser("alice"), e.newUser("bob"), e.newUser("carol")
	acme := e.newOrg(alice, "acme", "")
	var inv api.Invitation
	e.call("POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: acme.ID, Username: "bob"}, 201, &inv)
	e.call("POST", "/api/v1/invitations/"+inv.ID+"/accept", bob.Token, nil, 200, nil)
	path := orgRelaysPath(acme.ID)

	if st, code := e.errCode("GET", path, alice.Token, nil); st != 404 || code != api.CodeNotFound {
		t.Fatalf("GET before any: %d %s", st, code)
	}
	// Duplicates are dropped.
	req := orgRelaysReq()
	req.TURN = append(slices.Clone(req.TURN), req.TURN[0])
	st, body := e.do("PUT", path, alice.Token, req)
	if st != 200 || bytes.Contains(body, []byte(orgSecret)) || bytes.Contains(body, []byte("secret")) {
		t.Fatalf("PUT: %d %s", st, body)
	}
	var set api.OrgRelays
	e.call("PUT", path, alice.Token, orgRelaysReq(), 200, &set)
	if set.OrganizationID != acme.ID || !slices.Equal(set.TURN, orgTURN) || !slices.Equal(set.STUN, orgSTUN) || !set.UpdatedAt.Equal(e.clock.Now()) {
		t.Fatalf("PUT answered %+v", set)
	}
	for _, who := range []user{alice, bob} {
		st, body := e.do("GET", path, who.Token, nil)
		if st != 200 || bytes.Contains(body, []byte(orgSecret)) {
			t.Fatalf("GET as %s: %d %s", who.Name, st, body)
		}
		var got api.OrgRelays
		e.call("GET", path, who.Token, nil, 200, &got)
		if !slices.Equal(got.TURN, orgTURN) || !slices.Equal(got.STUN, orgSTUN) {
			t.Errorf("GET as %s: %+v", who.Name, got)
		}
	}
	// Without STUN servers: an empty list, not null.
	st, body = e.do("PUT", path, alice.Token, api.SetOrgRelaysRequest{TURN: orgTURN[:1], Secret: orgSecret})
	if st != 200 || !bytes.Contains(body, []byte(`"stun":[]`)) {
		t.Errorf("PUT without STUN: %d %s", st, body)
	}

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
		if st, _ := e.errCode(tc.method, path, tc.token, b); st != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, st, tc.status)
		}
	}

	// Validation.
	long := strings.Repeat("a", 250)
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
		{"stun scheme", api.SetOrgRelaysRequest{TURN: []string{"stun:1.2.3.4:3478?transport=udp"}, Secret: orgSecret}, 400},
		{"http scheme", api.SetOrgRelaysRequest{TURN: []string{"http://1.2.3.4:3478"}, Secret: orgSecret}, 400},
		{"no transport", api.SetOrgRelaysRequest{TURN: []string{"turn:1.2.3.4:3478"}, Secret: orgSecret}, 400},
		{"bad transport", api.SetOrgRelaysRequest{TURN: []string{"turn:1.2.3.4:3478?transport=sctp"}, Secret: orgSecret}, 400},
		{"extra query", api.SetOrgRelaysRequest{TURN: []string{"turn:1.2.3.4:3478?transport=udp&x=1"}, Secret: orgSecret}, 400},
		{"no port", api.SetOrgRelaysRequest{TURN: []string{"turn:1.2.3.4?transport=udp"}, Secret: orgSecret}, 400},
		{"port zero", api.SetOrgRelaysRequest{TURN: []string{"turn:1.2.3.4:0?transport=udp"}, Secret: orgSecret}, 400},
		{"port too big", api.SetOrgRelaysRequest{TURN: []string{"turn:1.2.3.4:65536?transport=udp"}, Secret: orgSecret}, 400},
		{"no host", api.SetOrgRelaysRequest{TURN: []string{"turn::3478?transport=udp"}, Secret: orgSecret}, 400},
		{"userinfo", api.SetOrgRelaysRequest{TURN: []string{"turn:user@1.2.3.4:3478?transport=udp"}, Secret: orgSecret}, 400},
		{"bare ipv6", api.SetOrgRelaysRequest{TURN: []string{"turn:2001:db8::1:3478?transport=udp"}, Secret: orgSecret}, 400},
		{"unspecified", api.SetOrgRelaysRequest{TURN: []string{"turn:0.0.0.0:3478?transport=udp"}, Secret: orgSecret}, 400},
		{"long url", api.SetOrgRelaysRequest{TURN: []string{"turn:" + long + ".example:3478?transport=udp"}, Secret: orgSecret}, 400},
		{"too many", api.SetOrgRelaysRequest{TURN: slices.Repeat(orgTURN[:1], api.MaxRelayServers+1), Secret: orgSecret}, 400},
		{"bad stun", api.SetOrgRelaysRequest{TURN: orgTURN, STUN: []string{"1.2.3.4"}, Secret: orgSecret}, 400},
		{"stun url", api.SetOrgRelaysRequest{TURN: orgTURN, STUN: []string{"stun:1.2.3.4:3478"}, Secret: orgSecret}, 400},
		{"unknown field", `{"turn":["turn:1.2.3.4:3478?transport=udp"],"secret":"` + orgSecret + `","color":"red"}`, 400},
		{"malformed", `{"turn":`, 400},
		{"empty", ``, 400},
		{"oversized", `{"secret":"` + strings.Repeat("a", api.MaxRequestBody) + `"}`, 413},
	} {
		if st, _ := e.errCode("PUT", path, alice.Token, tc.body); st != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, st, tc.status)
		}
	}
	for _, ok := range []string{"turn:[2001:db8::1]:3478?transport=udp", "turns:relay.example.com:443?transport=tcp", "turn:10.0.0.1:3478?transport=tcp"} {
		if st, b := e.do("PUT", path, alice.Token, api.SetOrgRelaysRequest{TURN: []string{ok}, Secret: orgSecret}); st != 200 {
			t.Errorf("%s refused: %d %s", ok, st, b)
		}
	}
	if st, _ := e.errCode("PUT", orgRelaysPath("not-an-id"), alice.Token, orgRelaysReq()); st != 400 {
		t.Errorf("bad id: %d", st)
	}
	if st, _ := e.errCode("POST", path, alice.Token, orgRelaysReq()); st != 405 {
		t.Errorf("POST: %d", st)
	}

	e.call("DELETE", path, alice.Token, nil, 204, nil)
	if st, code := e.errCode("GET", path, bob.Token, nil); st != 404 || code != api.CodeNotFound {
		t.Errorf("GET after clear: %d %s", st, code)
	}
	if st, _ := e.errCode("DELETE", path, alice.Token, nil); st != 404 {
		t.Errorf("second DELETE: %d", st)
	}
}

// relayFor fetches a device's relay configuration.
func (e *env) relayFor(d device) api.RelayConfig {
	e.t.Helper()
	var rc api.RelayConfig
	e.call("GET", relayPath(d.ID), d.Token, nil, 200, &rc)
	return rc
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
		if !slices.Equal(rc.TURN, orgTURN) || !slices.Equal(rc.STUN, orgSTUN) {
			t.Errorf("%s: org device got %+v", when, rc)
		}
		if id, err := turncred.Verify([]byte(orgSecret), rc.Username, rc.Password, e.clock.Now()); err != nil || id != da.ID {
			t.Errorf("%s: org credentials verify as %q, %v", when, id, err)
		}
		if _, err := turncred.Verify(relaySecret, rc.Username, rc.Password, e.clock.Now()); !errors.Is(err, turncred.ErrInvalid) {
			t.Errorf("%s: org credentials under the default secret: %v, want ErrInvalid", when, err)
		}
		other := e.relayFor(db)
		if !slices.Equal(other.TURN, e.cfg.TURNServers) || !slices.Equal(other.STUN, e.cfg.STUNServers) {
			t.Errorf("%s: other org's device got %+v", when, other)
		}
		if id, err := turncred.Verify(relaySecret, other.Username, other.Password, e.clock.Now()); err != nil || id != db.ID {
			t.Errorf("%s: default credentials verify as %q, %v", when, id, err)
		}
	}
	check("after set")

	// Sealed at rest: the database files never hold the secret.
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(e.path + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(orgSecret)) {
			t.Errorf("database file %s holds the relay secret in plaintext", e.path+suffix)
		}
	}

	e.restart()
	check("after restart")
	var got api.OrgRelays
	e.call("GET", orgRelaysPath(acme.ID), alice.Token, nil, 200, &got)
	if !slices.Equal(got.TURN, orgTURN) {
		t.Errorf("after restart: %+v", got)
	}

	// Another SealKey cannot open it: 500 rather than the default relays or garbage.
	e.cfg.SealKey = bytes.Repeat([]byte{1}, 32)
	e.restart()
	if st, code := e.errCode("GET", relayPath(da.ID), da.Token, nil); st != 500 || code != api.CodeInternal {
		t.Errorf("wrong SealKey: %d %s", st, code)
	}
	// Setting it again under the new key heals it; clearing goes back to the default.
	e.call("PUT", orgRelaysPath(acme.ID), alice.Token, orgRelaysReq(), 200, nil)
	check("after re-set")
	e.call("DELETE", orgRelaysPath(acme.ID), alice.Token, nil, 204, nil)
	if rc := e.relayFor(da); !slices.Equal(rc.TURN, e.cfg.TURNServers) {
		t.Errorf("after clear: %+v", rc)
	} else if _, err := turncred.Verify(relaySecret, rc.Username, rc.Password, e.clock.Now()); err != nil {
		t.Errorf("after clear: %v", err)
	}
}

// TestOrgRelaysWithoutSealKey: without a SealKey the secret is stored as given and works; a
// coordinator without default relays still serves organization relays.
func TestOrgRelaysWithoutSealKey(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	d := e.register(alice.Token, alice.PersonalOrg, "d", newKey(t), 201)
	if rc := e.relayFor(d); len(rc.TURN) != 0 || rc.Username != "" {
		t.Fatalf("no relays anywhere: %+v", rc)
	}
	e.call("PUT", orgRelaysPath(alice.PersonalOrg), alice.Token, orgRelaysReq(), 200, nil)
	rc := e.relayFor(d)
	if id, err := turncred.Verify([]byte(orgSecret), rc.Username, rc.Password, e.clock.Now()); err != nil || id != d.ID || !slices.Equal(rc.TURN, orgTURN) {
		t.Fatalf("org relays without a SealKey: %+v %q %v", rc, id, err)
	}
	// Adding a SealKey later keeps unsealed secrets readable.
	e.cfg.SealKey = sealKey
	e.restart()
	rc = e.relayFor(d)
	if _, err := turncred.Verify([]byte(orgSecret), rc.Username, rc.Password, e.clock.Now()); err != nil {
		t.Fatalf("unsealed secret after adding a SealKey: %v", err)
	}
}

func TestSealSecret(t *testing.T) {
	sealer, err := newSealer(sealKey)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{sealer: sealer}
	stored := s.sealSecret("org-1", []byte(orgSecret))
	if bytes.Contains(stored, []byte(orgSecret)) || stored[0] != secretSealed {
		t.Fatalf("sealed form %x", stored)
	}
	if again := s.sealSecret("org-1", []byte(orgSecret)); bytes.Equal(again, stored) {
		t.Error("sealing twice gave the same bytes (nonce reuse)")
	}
	if got, err := s.openSecret("org-1", stored); err != nil || string(got) != orgSecret {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := s.openSecret("org-2", stored); !errors.Is(err, ErrSealed) {
		t.Errorf("opened under another organization: %v", err)
	}
	tampered := slices.Clone(stored)
	tampered[len(tampered)-1] ^= 1
	for name, b := range map[string][]byte{"tampered": tampered, "truncated": stored[:10], "empty": nil, "unknown format": {9, 1, 2}} {
		if _, err := s.openSecret("org-1", b); !errors.Is(err, ErrSealed) {
			t.Errorf("%s: %v, want ErrSealed", name, err)
		}
	}
	if _, err := (&Server{}).openSecret("org-1", stored); !errors.Is(err, ErrSealed) {
		t.Errorf("without a key: %v", err)
	}
	if _, err := newSealer(make([]byte, 16)); err == nil {
		t.Error("16-byte SealKey accepted")
	}
}

// relayEvent waits for the next relay event on s, skipping others, until the deadline.
func (s *sse) relayEvent(deadline time.Duration, what string, ok func(api.RelayConfig) bool) (sseEvent, time.Time) {
	s.t.Helper()
	timeout := time.After(deadline)
	for {
		select {
		case ev, open := <-s.ch:
			if !open {
				s.t.Fatalf("%s: stream ended", what)
			}
			if ev.Type != api.EventRelay {
				continue
			}
			if ev.ID != "" || ev.Event.Revision != 0 || ev.Event.Relay == nil {
				s.t.Fatalf("%s: relay event with id %q, revision %d, relay %v", what, ev.ID, ev.Event.Revision, ev.Event.Relay)
			}
			if ok(*ev.Event.Relay) {
				return ev, time.Now()
			}
		case <-timeout:
			s.t.Fatalf("%s: no such relay event within %s", what, deadline)
		}
	}
}

// TestRelayEventsOnStream: a device's stream brings relay events after connecting, before the
// credentials expire and at once when the organization's relays change; they carry no
// revision, so resuming from the last logged revision still works.
func TestRelayEventsOnStream(t *testing.T) {
	const ttl = 6 * time.Second
	e := newEnv(t, withRelay, withSealKey, func(c *Config) {
		c.Now = time.Now // credentials must really age
		c.RelayCredentialTTL = ttl
	})
	alice, bob := e.newUser("alice"), e.newUser("bob")
	d := e.register(alice.Token, alice.PersonalOrg, "d", newKey(t), 201)
	peer := e.register(alice.Token, alice.PersonalOrg, "peer", newKey(t), 201)
	other := e.register(bob.Token, bob.PersonalOrg, "other", newKey(t), 201)
	defaults := func(rc api.RelayConfig) bool { return slices.Equal(rc.TURN, e.cfg.TURNServers) }
	org := func(rc api.RelayConfig) bool { return slices.Equal(rc.TURN, orgTURN) }

	s := e.openStream("/api/v1/devices/"+d.ID+"/events", d.Token, "")
	defer s.close()
	sync := s.next()
	if sync.Type != api.EventSync || sync.ID == "" {
		t.Fatalf("first event %s %q", sync.Type, sync.ID)
	}
	first := s.next() // right after the sync
	if first.Type != api.EventRelay || first.ID != "" || first.Event.Relay == nil || !defaults(*first.Event.Relay) {
		t.Fatalf("second event: %+v", first)
	}
	rc1 := *first.Event.Relay
	if id, err := turncred.Verify(relaySecret, rc1.Username, rc1.Password, time.Now()); err != nil || id != d.ID {
		t.Fatalf("pushed credentials verify as %q, %v", id, err)
	}
	os2 := e.openStream("/api/v1/devices/"+other.ID+"/events", other.Token, "")
	defer os2.close()
	os2.next() // sync
	os2.relayEvent(5*time.Second, "other org's first relay event", defaults)

	// Renewed before they expire (at half their lifetime).
	ev2, at := s.relayEvent(2*ttl, "renewal", defaults)
	rc2 := *ev2.Event.Relay
	if !at.Before(rc1.ExpiresAt) || !rc2.ExpiresAt.After(rc1.ExpiresAt) {
		t.Errorf("renewal at %v with expiry %v; first expiry %v", at, rc2.ExpiresAt, rc1.ExpiresAt)
	}
	if _, err := turncred.Verify(relaySecret, rc2.Username, rc2.Password, time.Now()); err != nil {
		t.Errorf("renewed credentials: %v", err)
	}

	// The organization's relays change: pushed at once (well before the next renewal).
	start := time.Now()
	e.call("PUT", orgRelaysPath(alice.PersonalOrg), alice.Token, orgRelaysReq(), 200, nil)
	ev3, at := s.relayEvent(ttl/3, "relay change", org)
	rc3 := *ev3.Event.Relay
	if id, err := turncred.Verify([]byte(orgSecret), rc3.Username, rc3.Password, time.Now()); err != nil || id != d.ID {
		t.Errorf("org credentials verify as %q, %v", id, err)
	}
	if !slices.Equal(rc3.STUN, orgSTUN) {
		t.Errorf("org STUN %v", rc3.STUN)
	}
	t.Logf("relay change pushed after %v", at.Sub(start))
	// Other organizations are not told anything new: their next relay event is a renewal of
	// the default.
	os2.relayEvent(2*ttl, "other org's renewal", defaults)

	// Log events still flow with their revisions and the relay events did not disturb them.
	e.call("DELETE", "/api/v1/devices/"+peer.ID, alice.Token, nil, 204, nil)
	var removed sseEvent
	for removed.Type != api.EventDeviceRemoved {
		removed = s.next()
	}
	rev, err := strconv.ParseInt(removed.ID, 10, 64)
	if err != nil || rev <= mustRev(t, sync.ID) {
		t.Fatalf("device.removed id %q after sync %q", removed.ID, sync.ID)
	}

	// Clearing goes back to the default, at once.
	e.call("DELETE", orgRelaysPath(alice.PersonalOrg), alice.Token, nil, 204, nil)
	s.relayEvent(ttl/3, "relay clear", defaults)
	s.close()

	// Resume from the last logged revision: no sync (nothing was missed), nothing replayed, a
	// fresh relay event.
	r := e.openStream("/api/v1/devices/"+d.ID+"/events", d.Token, removed.ID)
	defer r.close()
	ev := r.next()
	if ev.Type != api.EventRelay || ev.ID != "" || !defaults(*ev.Event.Relay) {
		t.Fatalf("first event of the resumed stream: %s %q", ev.Type, ev.ID)
	}
	// And a resume from the sync's revision replays the log, not the relay events.
	r2 := e.openStream("/api/v1/devices/"+d.ID+"/events", d.Token, sync.ID)
	defer r2.close()
	var types []string
	for {
		ev := r2.next()
		types = append(types, ev.Type)
		if ev.Type == api.EventRelay {
			break
		}
	}
	if !slices.Equal(types, []string{api.EventDeviceRemoved, api.EventRelay}) {
		t.Errorf("resumed from the sync: %v", types)
	}
}

func mustRev(t *testing.T, id string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		t.Fatalf("revision %q: %v", id, err)
	}
	return n
}

// TestRelayEventsNotWithoutRelays: a coordinator without relays sends no relay events, and
// an organization stream never carries them.
func TestRelayEventsNotWithoutRelays(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Heartbeat = 50 * time.Millisecond })
	alice := e.newUser("alice")
	d := e.register(alice.Token, alice.PersonalOrg, "d", newKey(t), 201)
	s := e.openStream("/api/v1/devices/"+d.ID+"/events", d.Token, "")
	defer s.close()
	o := e.openStream("/api/v1/organizations/"+alice.PersonalOrg+"/events", alice.Token, "")
	defer o.close()
	if ev := s.next(); ev.Type != api.EventSync {
		t.Fatalf("first event %s", ev.Type)
	}
	o.next()
	// The organization gets relays: the device's stream is told, the organization's is not.
	e.call("PUT", orgRelaysPath(alice.PersonalOrg), alice.Token, orgRelaysReq(), 200, nil)
	if ev := s.next(); ev.Type != api.EventRelay || !slices.Equal(ev.Event.Relay.TURN, orgTURN) {
		t.Fatalf("after set: %+v", ev)
	}
	// Cleared: the device is told there are none now.
	e.call("DELETE", orgRelaysPath(alice.PersonalOrg), alice.Token, nil, 204, nil)
	if ev := s.next(); ev.Type != api.EventRelay || len(ev.Event.Relay.TURN) != 0 || ev.Event.Relay.Username != "" {
		t.Fatalf("after clear: %+v", ev)
	}
	pings := o.pings.Load()
	eventually(t, "a few heartbeats on the organization stream", func() bool { return o.pings.Load() >= pings+3 })
	select {
	case ev := <-o.ch:
		t.Errorf("organization stream got %s", ev.Type)
	default:
	}
}
