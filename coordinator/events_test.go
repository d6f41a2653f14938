package coordinator

import (
	"context"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
)

type evWant struct {
	typ    string
	device string
}

// expect reads len(want) events and checks their types, devices and strictly increasing
// revisions; it returns the last revision.
func expect(t *testing.T, s *sse, after int64, want ...evWant) int64 {
	t.Helper()
	last := after
	for i, w := range want {
		ev := s.next()
		rev, err := strconv.ParseInt(ev.ID, 10, 64)
		if err != nil || rev != ev.Event.Revision {
			t.Fatalf("event %d: id %q revision %d", i, ev.ID, ev.Event.Revision)
		}
		if rev <= last && ev.Type != api.EventSync {
			t.Fatalf("event %d: revision %d not above %d", i, rev, last)
		}
		last = rev
		if ev.Type != w.typ || ev.Event.Type != w.typ {
			t.Fatalf("event %d: type %s want %s", i, ev.Type, w.typ)
		}
		switch {
		case w.typ == api.EventSignal:
			if ev.Event.Signal == nil || ev.Event.Signal.From != w.device {
				t.Fatalf("event %d: signal %+v want from %s", i, ev.Event.Signal, w.device)
			}
		case w.device != "":
			if ev.Event.Device == nil || ev.Event.Device.ID != w.device {
				t.Fatalf("event %d: device %+v want %s", i, ev.Event.Device, w.device)
			}
		}
	}
	return last
}

func TestEventStreamResume(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	org := e.newOrg(alice, "acme", "")
	key := e.newRegKey(alice, org.ID, api.CreateRegKeyRequest{})
	d1 := e.register(key.Secret, "", "one", newKey(t), 201)

	orgPath := "/api/v1/organizations/" + org.ID + "/events"
	devPath := "/api/v1/devices/" + d1.ID + "/events"
	os := e.openStream(orgPath, alice.Token, "")
	ds := e.openStream(devPath, d1.Token, "")
	for _, s := range []*sse{os, ds} {
		ev := s.next()
		if ev.Type != api.EventSync || len(ev.Event.Devices) != 1 || ev.Event.Devices[0].ID != d1.ID {
			t.Fatalf("first event %s %+v", ev.Type, ev.Event)
		}
	}
	// d1 is online while its stream is connected.
	eventually(t, "d1 online", func() bool {
		var d api.Device
		e.call("GET", "/api/v1/devices/"+d1.ID, alice.Token, nil, 200, &d)
		return d.Online
	})

	d2 := e.register(key.Secret, "", "two", newKey(t), 201)
	host := "two-renamed"
	e.call("PATCH", "/api/v1/devices/"+d2.ID, d2.Token, api.UpdateDeviceRequest{Hostname: &host}, 200, nil)
	e.call("POST", "/api/v1/devices/"+d1.ID+"/signal", d2.Token, api.SignalRequest{Payload: []byte("offer-1")}, 204, nil)
	orgLast := expect(t, os, 0, evWant{api.EventDeviceAdded, d2.ID}, evWant{api.EventDeviceUpdated, d2.ID})
	devLast := expect(t, ds, 0, evWant{api.EventDeviceAdded, d2.ID}, evWant{api.EventDeviceUpdated, d2.ID}, evWant{api.EventSignal, d2.ID})

	// Drop both connections; changes happen meanwhile.
	os.close()
	ds.close()
	eventually(t, "d1 offline", func() bool {
		var d api.Device
		e.call("GET", "/api/v1/devices/"+d1.ID, alice.Token, nil, 200, &d)
		return !d.Online
	})
	d3 := e.register(key.Secret, "", "three", newKey(t), 201)
	e.call("POST", "/api/v1/devices/"+d1.ID+"/signal", d3.Token, api.SignalRequest{Payload: []byte("offer-2")}, 204, nil)
	e.call("DELETE", "/api/v1/devices/"+d2.ID, alice.Token, nil, 204, nil)
	eps := []api.Endpoint{{Source: api.EndpointReflexive, Address: "[2001:db8::1]:51820"}}
	e.call("PATCH", "/api/v1/devices/"+d1.ID, d1.Token, api.UpdateDeviceRequest{Endpoints: &eps}, 200, nil)
	// A PATCH that changes nothing records nothing.
	e.call("PATCH", "/api/v1/devices/"+d1.ID, d1.Token, api.UpdateDeviceRequest{Endpoints: &eps}, 200, nil)

	// Resume: exactly the missed events, in order, no sync.
	os = e.openStream(orgPath, alice.Token, strconv.FormatInt(orgLast, 10))
	defer os.close()
	expect(t, os, orgLast, evWant{api.EventDeviceAdded, d3.ID}, evWant{api.EventDeviceRemoved, d2.ID}, evWant{api.EventDeviceUpdated, d1.ID})
	ds = e.openStream(devPath, d1.Token, strconv.FormatInt(devLast, 10))
	defer ds.close()
	last := expect(t, ds, devLast, evWant{api.EventDeviceAdded, d3.ID}, evWant{api.EventSignal, d3.ID}, evWant{api.EventDeviceRemoved, d2.ID}, evWant{api.EventDeviceUpdated, d1.ID})

	// Live events continue after the replay, and the signal payload arrives intact.
	e.call("POST", "/api/v1/devices/"+d1.ID+"/signal", d3.Token, api.SignalRequest{Payload: []byte{0, 1, 2, 255}}, 204, nil)
	ev := ds.next()
	if ev.Type != api.EventSignal || string(ev.Event.Signal.Payload) != "\x00\x01\x02\xff" || ev.Event.Signal.To != d1.ID {
		t.Fatalf("signal %+v", ev.Event.Signal)
	}
	if ev.Event.Revision <= last {
		t.Fatal("revision did not increase")
	}

	// After pruning, a resume from before the pruned revision gets a sync.
	e.clock.Advance(25 * time.Hour)
	e.coord.sweep(context.Background())
	old := e.openStream(devPath, d1.Token, strconv.FormatInt(devLast, 10))
	defer old.close()
	ev = old.next()
	if ev.Type != api.EventSync || len(ev.Event.Devices) != 2 {
		t.Fatalf("resume after prune: %s with %d devices", ev.Type, len(ev.Event.Devices))
	}
	// A bad Last-Event-ID is a 400.
	for _, id := range []string{"abc", "-1", "1e3"} {
		req := "/api/v1/organizations/" + org.ID + "/events"
		st, code := e.doHeader("GET", req, alice.Token, "Last-Event-ID", id)
		if st != 400 || code != api.CodeBadRequest {
			t.Fatalf("Last-Event-ID %q: %d %s", id, st, code)
		}
	}
	// A resume from the future (another database) gets a sync.
	fut := e.openStream(orgPath, alice.Token, "999999")
	defer fut.close()
	if ev := fut.next(); ev.Type != api.EventSync {
		t.Fatalf("resume from the future: %s", ev.Type)
	}
}

func TestStreamsEnd(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	bob := e.newUser("bob")
	org := e.newOrg(alice, "acme", "")
	var inv api.Invitation
	e.call("POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: org.ID, Username: "bob"}, 201, &inv)
	e.call("POST", "/api/v1/invitations/"+inv.ID+"/accept", bob.Token, nil, 200, nil)
	key := e.newRegKey(alice, org.ID, api.CreateRegKeyRequest{})
	d := e.register(key.Secret, "", "one", newKey(t), 201)

	// A deleted device's stream sends its own removal and ends.
	ds := e.openStream("/api/v1/devices/"+d.ID+"/events", d.Token, "")
	defer ds.close()
	ds.next()
	e.call("DELETE", "/api/v1/devices/"+d.ID, alice.Token, nil, 204, nil)
	expect(t, ds, 0, evWant{api.EventDeviceRemoved, d.ID})
	ds.ended()

	// A removed member's organization stream ends.
	bs := e.openStream("/api/v1/organizations/"+org.ID+"/events", bob.Token, "")
	defer bs.close()
	bs.next()
	e.call("DELETE", "/api/v1/organizations/"+org.ID+"/members/"+bob.ID, alice.Token, nil, 204, nil)
	bs.ended()

	// Close ends the remaining streams.
	as := e.openStream("/api/v1/organizations/"+org.ID+"/events", alice.Token, "")
	defer as.close()
	as.next()
	e.coord.Close()
	as.ended()
}

func TestHeartbeat(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Heartbeat = 10 * time.Millisecond })
	alice := e.newUser("alice")
	s := e.openStream("/api/v1/organizations/"+alice.PersonalOrg+"/events", alice.Token, "")
	defer s.close()
	s.next()
	eventually(t, "heartbeats", func() bool { return s.pings.Load() >= 3 })
	// The stream is still healthy after many heartbeats.
	e.register(alice.Token, alice.PersonalOrg, "late", newKey(t), 201)
	if ev := s.next(); ev.Type != api.EventDeviceAdded {
		t.Fatalf("got %s", ev.Type)
	}
}

func TestEphemeralDevices(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.EphemeralGrace = time.Minute
		c.SweepInterval = 5 * time.Millisecond
	})
	alice := e.newUser("alice")
	eph := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{Ephemeral: true})
	d := e.register(eph.Secret, "", "eph", newKey(t), 201)
	keep := e.register(alice.Token, alice.PersonalOrg, "keep", newKey(t), 201)
	if !d.Ephemeral || keep.Ephemeral {
		t.Fatal("ephemeral flags wrong")
	}
	// A device may ask to be ephemeral itself, with a key that is not.
	var asked api.RegisterDeviceResponse
	e.call("POST", "/api/v1/devices", alice.Token, api.RegisterDeviceRequest{
		OrganizationID: alice.PersonalOrg, PublicKey: newKey(t).Pub, Hostname: "asked", Ephemeral: true,
	}, 201, &asked)
	if !asked.Device.Ephemeral {
		t.Fatal("device that asked to be ephemeral is not")
	}
	s := e.openStream("/api/v1/devices/"+d.ID+"/events", d.Token, "")
	s.next()
	eventually(t, "online", func() bool {
		var got api.Device
		e.call("GET", "/api/v1/devices/"+d.ID, alice.Token, nil, 200, &got)
		return got.Online
	})
	// Connected: it survives well past the grace period.
	e.clock.Advance(5 * time.Minute)
	e.coord.sweep(context.Background())
	e.call("GET", "/api/v1/devices/"+d.ID, alice.Token, nil, 200, nil)
	s.close()
	eventually(t, "offline", func() bool { return !e.coord.hub.isOnline(d.ID) })
	e.clock.Advance(30 * time.Second)
	e.coord.sweep(context.Background())
	e.call("GET", "/api/v1/devices/"+d.ID, alice.Token, nil, 200, nil)
	e.clock.Advance(31 * time.Second)
	eventually(t, "ephemeral device deleted", func() bool {
		st, _ := e.errCode("GET", "/api/v1/devices/"+d.ID, alice.Token, nil)
		return st == 404
	})
	e.clock.Advance(time.Hour)
	e.coord.sweep(context.Background())
	e.call("GET", "/api/v1/devices/"+keep.ID, alice.Token, nil, 200, nil)
}

func TestSignalingCrossOrgDenied(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	bob := e.newUser("bob")
	a := e.register(alice.Token, alice.PersonalOrg, "a", newKey(t), 201)
	a2 := e.register(alice.Token, alice.PersonalOrg, "a2", newKey(t), 201)
	b := e.register(bob.Token, bob.PersonalOrg, "b", newKey(t), 201)
	if st, code := e.errCode("POST", "/api/v1/devices/"+a.ID+"/signal", b.Token, api.SignalRequest{Payload: []byte("x")}); st != 404 || code != api.CodeNotFound {
		t.Fatalf("cross-org signal: %d %s", st, code)
	}
	if st, _ := e.errCode("POST", "/api/v1/devices/"+a.ID+"/signal", bob.Token, api.SignalRequest{Payload: []byte("x")}); st != 403 {
		t.Fatalf("user signal: %d", st)
	}
	big := make([]byte, api.MaxSignalPayload+1)
	if st, code := e.errCode("POST", "/api/v1/devices/"+a.ID+"/signal", a2.Token, api.SignalRequest{Payload: big}); st != 413 || code != api.CodeTooLarge {
		t.Fatalf("oversized signal: %d %s", st, code)
	}
	if st, _ := e.errCode("POST", "/api/v1/devices/"+a.ID+"/signal", a2.Token, api.SignalRequest{}); st != 400 {
		t.Fatalf("empty signal: %d", st)
	}
	// Signals reach only the addressed device's stream, never the organization stream.
	os := e.openStream("/api/v1/organizations/"+alice.PersonalOrg+"/events", alice.Token, "")
	defer os.close()
	os.next()
	as := e.openStream("/api/v1/devices/"+a2.ID+"/events", a2.Token, "")
	defer as.close()
	as.next()
	e.call("POST", "/api/v1/devices/"+a.ID+"/signal", a2.Token, api.SignalRequest{Payload: []byte("hi")}, 204, nil)
	e.register(alice.Token, alice.PersonalOrg, "marker", newKey(t), 201)
	if ev := os.next(); ev.Type != api.EventDeviceAdded {
		t.Fatalf("org stream got %s", ev.Type)
	}
	if ev := as.next(); ev.Type != api.EventDeviceAdded {
		t.Fatalf("other device's stream got %s", ev.Type)
	}
}

func TestReadiness(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(context.Background(), Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	get := func(path string) int {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code
	}
	if get("/readyz") != 200 || get("/healthz") != 200 {
		t.Fatal("not ready with an open store")
	}
	st.Close()
	if got := get("/readyz"); got != 503 {
		t.Fatalf("readyz with a closed store: %d", got)
	}
	if got := get("/healthz"); got != 200 {
		t.Fatalf("healthz: %d", got)
	}
	// Without an admin token configured, nothing authenticates as admin.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/v1/users", nil)
	req.Header.Set("Authorization", "Bearer ")
	c.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Fatalf("empty bearer: %d", rec.Code)
	}
}

// TestEphemeralSharedStore runs two coordinators on one store, as replicas would: the one
// without the device's stream must not delete an ephemeral device the other sees connected.
func TestEphemeralSharedStore(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.EphemeralGrace = time.Minute
		c.Heartbeat = 5 * time.Millisecond
	})
	cfg := e.cfg
	cfg.Store = e.store
	other, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	alice := e.newUser("alice")
	eph := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{Ephemeral: true})
	d := e.register(eph.Secret, "", "eph", newKey(t), 201)
	other.hub.trackEphemeral(d.ID, e.clock.Now()) // as if it had loaded the device at start
	s := e.openStream("/api/v1/devices/"+d.ID+"/events", d.Token, "")
	defer s.close()
	s.next()
	e.clock.Advance(2 * time.Minute)
	eventually(t, "last seen recorded", func() bool {
		var seen time.Time
		_ = e.store.Tx(context.Background(), func(tx store.Tx) error {
			dev, err := tx.GetDevice(context.Background(), d.ID)
			seen = dev.LastSeenAt
			return err
		})
		return !seen.Before(e.clock.Now())
	})
	other.sweep(context.Background())
	e.call("GET", "/api/v1/devices/"+d.ID, alice.Token, nil, 200, nil)
}
