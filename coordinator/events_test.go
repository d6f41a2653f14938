package coordinator

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
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
		require.NoError(t, err, "event %d: id %q", i, ev.ID)
		require.Equal(t, ev.Event.Revision, rev, "event %d: id and revision", i)
		if ev.Type != api.EventSync {
			require.Greater(t, rev, last, "event %d: revision", i)
		}
		last = rev
		require.Equal(t, w.typ, ev.Type, "event %d", i)
		require.Equal(t, w.typ, ev.Event.Type, "event %d", i)
		switch {
		case w.typ == api.EventSignal:
			require.NotNil(t, ev.Event.Signal, "event %d", i)
			require.Equal(t, w.device, ev.Event.Signal.From, "event %d: signal sender", i)
		case w.device != "":
			require.NotNil(t, ev.Event.Device, "event %d", i)
			require.Equal(t, w.device, ev.Event.Device.ID, "event %d: device", i)
		}
	}
	return last
}

// device reads a device with the token.
func (e *env) device(token, id string) api.Device {
	e.t.Helper()
	var d api.Device
	e.call("GET", "/api/v1/devices/"+id, token, nil, 200, &d)
	return d
}

func devicePath(id, sub string) string { return "/api/v1/devices/" + id + sub }

func orgPath(id, sub string) string { return "/api/v1/organizations/" + id + sub }

// signal sends a signal from device from to device to.
func (e *env) signal(from device, to string, payload []byte) {
	e.t.Helper()
	e.call("POST", devicePath(to, "/signal"), from.Token, api.SignalRequest{Payload: payload}, 204, nil)
}

func TestEventStreamResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.SweepInterval, c.Heartbeat = time.Hour, time.Hour })
		alice := e.newUser("alice")
		org := e.newOrg(alice, "acme", "")
		key := e.newRegKey(alice, org.ID, api.CreateRegKeyRequest{})
		d1 := e.register(key.Secret, "", "one", newKey(t), 201)

		ms := e.openStream(orgPath(org.ID, "/events"), alice.Token, "")
		ds := e.openStream(devicePath(d1.ID, "/events"), d1.Token, "")
		for _, s := range []*sse{ms, ds} {
			ev := s.next()
			require.Equal(t, api.EventSync, ev.Type)
			require.Len(t, ev.Event.Devices, 1)
			require.Equal(t, d1.ID, ev.Event.Devices[0].ID)
		}
		// d1 is online while its stream is connected.
		require.True(t, e.device(alice.Token, d1.ID).Online)

		d2 := e.register(key.Secret, "", "two", newKey(t), 201)
		host := "two-renamed"
		e.call("PATCH", devicePath(d2.ID, ""), d2.Token, api.UpdateDeviceRequest{Hostname: &host}, 200, nil)
		e.signal(d2, d1.ID, []byte("offer-1"))
		orgLast := expect(t, ms, 0, evWant{api.EventDeviceAdded, d2.ID}, evWant{api.EventDeviceUpdated, d2.ID})
		devLast := expect(t, ds, 0, evWant{api.EventDeviceAdded, d2.ID}, evWant{api.EventDeviceUpdated, d2.ID}, evWant{api.EventSignal, d2.ID})

		// Drop both connections; changes happen meanwhile.
		ms.close()
		ds.close()
		synctest.Wait()
		require.False(t, e.device(alice.Token, d1.ID).Online)
		d3 := e.register(key.Secret, "", "three", newKey(t), 201)
		e.signal(d3, d1.ID, []byte("offer-2"))
		e.call("DELETE", devicePath(d2.ID, ""), alice.Token, nil, 204, nil)
		eps := []api.Endpoint{{Source: api.EndpointReflexive, Address: "[2001:db8::1]:51820"}}
		e.call("PATCH", devicePath(d1.ID, ""), d1.Token, api.UpdateDeviceRequest{Endpoints: &eps}, 200, nil)
		// A PATCH that changes nothing records nothing.
		e.call("PATCH", devicePath(d1.ID, ""), d1.Token, api.UpdateDeviceRequest{Endpoints: &eps}, 200, nil)

		// Resume: exactly the missed events, in order, no sync.
		ms = e.openStream(orgPath(org.ID, "/events"), alice.Token, strconv.FormatInt(orgLast, 10))
		defer ms.close()
		expect(t, ms, orgLast, evWant{api.EventDeviceAdded, d3.ID}, evWant{api.EventDeviceRemoved, d2.ID}, evWant{api.EventDeviceUpdated, d1.ID})
		ds = e.openStream(devicePath(d1.ID, "/events"), d1.Token, strconv.FormatInt(devLast, 10))
		defer ds.close()
		last := expect(t, ds, devLast, evWant{api.EventDeviceAdded, d3.ID}, evWant{api.EventSignal, d3.ID},
			evWant{api.EventDeviceRemoved, d2.ID}, evWant{api.EventDeviceUpdated, d1.ID})

		// Live events continue after the replay, and the signal payload arrives intact.
		e.signal(d3, d1.ID, []byte{0, 1, 2, 255})
		ev := ds.next()
		require.Equal(t, api.EventSignal, ev.Type)
		assert.Equal(t, "\x00\x01\x02\xff", string(ev.Event.Signal.Payload))
		assert.Equal(t, d1.ID, ev.Event.Signal.To)
		assert.Greater(t, ev.Event.Revision, last)

		// A day later the sweeper has pruned the log: a resume from before the pruned revision
		// gets a sync.
		time.Sleep(25 * time.Hour)
		synctest.Wait()
		old := e.openStream(devicePath(d1.ID, "/events"), d1.Token, strconv.FormatInt(devLast, 10))
		defer old.close()
		ev = old.next()
		require.Equal(t, api.EventSync, ev.Type, "resume after prune")
		require.Len(t, ev.Event.Devices, 2)
		// A bad Last-Event-ID is a 400.
		for _, id := range []string{"abc", "-1", "1e3"} {
			st, code := e.errCode("GET", orgPath(org.ID, "/events"), alice.Token, nil, "Last-Event-ID", id)
			assert.Equal(t, 400, st, "Last-Event-ID %q", id)
			assert.Equal(t, api.CodeBadRequest, code, "Last-Event-ID %q", id)
		}
		// A resume from the future (another database) gets a sync.
		fut := e.openStream(orgPath(org.ID, "/events"), alice.Token, "999999")
		defer fut.close()
		require.Equal(t, api.EventSync, fut.next().Type, "resume from the future")
	})
}

func TestStreamsEnd(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	bob := e.newUser("bob")
	org := e.newOrg(alice, "acme", "")
	e.invite(alice, bob, org.ID, "")
	key := e.newRegKey(alice, org.ID, api.CreateRegKeyRequest{})
	d := e.register(key.Secret, "", "one", newKey(t), 201)

	// A deleted device's stream sends its own removal, then says why it ends.
	ds := e.openStream(devicePath(d.ID, "/events"), d.Token, "")
	defer ds.close()
	ds.next()
	e.call("DELETE", devicePath(d.ID, ""), alice.Token, nil, 204, nil)
	expect(t, ds, 0, evWant{api.EventDeviceRemoved, d.ID})
	ds.endedWith(api.ReasonDeviceRemoved)
	// Reconnecting, the device learns the same.
	status, body := e.do("GET", devicePath(d.ID, "/events"), d.Token, nil)
	require.Equal(t, 401, status)
	var apiErr api.Error
	require.NoError(t, json.Unmarshal(body, &apiErr))
	assert.Equal(t, api.ReasonDeviceRemoved, apiErr.Reason)

	// A removed member's organization stream ends, saying why.
	bs := e.openStream(orgPath(org.ID, "/events"), bob.Token, "")
	defer bs.close()
	bs.next()
	e.call("DELETE", orgPath(org.ID, "/members/"+bob.ID), alice.Token, nil, 204, nil)
	bs.endedWith(api.ReasonMembershipEnded)

	// Close ends the remaining streams without a reason (the coordinator is coming back), and
	// new ones are refused.
	as := e.openStream(orgPath(org.ID, "/events"), alice.Token, "")
	defer as.close()
	as.next()
	require.NoError(t, e.coord.Close())
	as.ended()
	e.fails(503, api.CodeUnavailable, "GET", orgPath(org.ID, "/events"), alice.Token, nil)
}

// Deleting an organization appends no device event, but every stream of it ends saying so:
// its devices' and its members'.
func TestStreamsEndWithOrganization(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	org := e.newOrg(alice, "doomed", "")
	key := e.newRegKey(alice, org.ID, api.CreateRegKeyRequest{})
	d := e.register(key.Secret, "", "one", newKey(t), 201)
	ds := e.openStream(devicePath(d.ID, "/events"), d.Token, "")
	defer ds.close()
	ds.next()
	ms := e.openStream(orgPath(org.ID, "/events"), alice.Token, "")
	defer ms.close()
	ms.next()

	e.call("DELETE", orgPath(org.ID, ""), alice.Token, nil, 204, nil)
	ds.endedWith(api.ReasonOrganizationDeleted)
	ms.endedWith(api.ReasonOrganizationDeleted)
}

// A stream opened with a user API token ends within a second of the token's revocation, which
// appends no event: the stream re-checks its token on a timer.
func TestStreamEndsAtCredentialRevocation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		alice := e.newUser("alice")
		var tok api.Token
		e.call("POST", "/api/v1/users/me/tokens", alice.Token, api.CreateTokenRequest{Description: "watcher"}, 201, &tok)
		s := e.openStream(orgPath(alice.PersonalOrg, "/events"), tok.Secret, "")
		defer s.close()
		require.Equal(t, api.EventSync, s.next().Type)

		e.call("DELETE", "/api/v1/users/me/tokens/"+tok.ID, alice.Token, nil, 204, nil)
		time.Sleep(credentialRecheck)
		s.endedWith(api.ReasonCredentialRevoked)
	})
}

// A stream opened with an expiring user token ends at the expiry, on a timer: no event needs
// to wake it. The token is then refused with the same reason.
func TestStreamEndsAtCredentialExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		alice := e.newUser("alice")
		var tok api.Token
		e.call("POST", "/api/v1/users/"+alice.ID+"/tokens", adminToken, api.CreateTokenRequest{Description: "short", ExpiresInSeconds: 2}, 201, &tok)
		s := e.openStream(orgPath(alice.PersonalOrg, "/events"), tok.Secret, "")
		defer s.close()
		require.Equal(t, api.EventSync, s.next().Type)

		time.Sleep(time.Second)
		synctest.Wait()
		s.quiet("before the expiry")
		time.Sleep(time.Second)
		s.endedWith(api.ReasonCredentialExpired)

		status, body := e.do("GET", orgPath(alice.PersonalOrg, "/events"), tok.Secret, nil)
		require.Equal(t, 401, status)
		var apiErr api.Error
		require.NoError(t, json.Unmarshal(body, &apiErr))
		assert.Equal(t, api.ReasonCredentialExpired, apiErr.Reason)
	})
}

func TestHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const heartbeat = 10 * time.Millisecond
		e := newEnv(t, func(c *Config) { c.Heartbeat = heartbeat })
		alice := e.newUser("alice")
		s := e.openStream(orgPath(alice.PersonalOrg, "/events"), alice.Token, "")
		defer s.close()
		s.next()
		time.Sleep(3*heartbeat + heartbeat/2)
		synctest.Wait()
		require.EqualValues(t, 3, s.pings.Load(), "heartbeats in three and a half intervals")
		// The stream is still healthy after the heartbeats.
		e.register(alice.Token, alice.PersonalOrg, "late", newKey(t), 201)
		require.Equal(t, api.EventDeviceAdded, s.next().Type)
	})
}

// TestEphemeralDevices follows an ephemeral device through the sweeper's ticks: kept while
// connected, kept for the grace period after disconnecting, deleted after it.
func TestEphemeralDevices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const grace, sweep = time.Minute, 10 * time.Second
		e := newEnv(t, func(c *Config) { c.EphemeralGrace, c.SweepInterval = grace, sweep })
		alice := e.newUser("alice")
		eph := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{Ephemeral: true})
		d := e.register(eph.Secret, "", "eph", newKey(t), 201)
		keep := e.register(alice.Token, alice.PersonalOrg, "keep", newKey(t), 201)
		require.True(t, d.Ephemeral)
		require.False(t, keep.Ephemeral)
		// A device may ask to be ephemeral itself, with a key that is not.
		var asked api.RegisterDeviceResponse
		e.call("POST", "/api/v1/devices", alice.Token, api.RegisterDeviceRequest{
			OrganizationID: alice.PersonalOrg, PublicKey: newKey(t).Pub, Hostname: "asked", Ephemeral: true,
		}, 201, &asked)
		require.True(t, asked.Device.Ephemeral, "device that asked to be ephemeral")

		s := e.openStream(devicePath(d.ID, "/events"), d.Token, "")
		s.next()
		require.True(t, e.device(alice.Token, d.ID).Online)
		// Connected: it survives well past the grace period.
		time.Sleep(5 * time.Minute)
		e.device(alice.Token, d.ID)
		s.close()
		synctest.Wait()
		require.False(t, e.coord.hub.isOnline(d.ID))
		time.Sleep(grace / 2)
		e.device(alice.Token, d.ID)
		time.Sleep(grace/2 + sweep + time.Second)
		e.fails(404, api.CodeNotFound, "GET", devicePath(d.ID, ""), alice.Token, nil)
		// The device that asked was never connected: gone as well. Others stay, however long.
		e.fails(404, api.CodeNotFound, "GET", devicePath(asked.Device.ID, ""), alice.Token, nil)
		time.Sleep(time.Hour)
		e.device(alice.Token, keep.ID)
	})
}

func TestSignalingCrossOrgDenied(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	bob := e.newUser("bob")
	a := e.register(alice.Token, alice.PersonalOrg, "a", newKey(t), 201)
	a2 := e.register(alice.Token, alice.PersonalOrg, "a2", newKey(t), 201)
	b := e.register(bob.Token, bob.PersonalOrg, "b", newKey(t), 201)
	path := devicePath(a.ID, "/signal")
	e.fails(404, api.CodeNotFound, "POST", path, b.Token, api.SignalRequest{Payload: []byte("x")})
	e.fails(403, api.CodeForbidden, "POST", path, bob.Token, api.SignalRequest{Payload: []byte("x")})
	e.fails(413, api.CodeTooLarge, "POST", path, a2.Token, api.SignalRequest{Payload: make([]byte, api.MaxSignalPayload+1)})
	e.fails(400, api.CodeBadRequest, "POST", path, a2.Token, api.SignalRequest{})
	// Signals reach only the addressed device's stream, never the organization stream.
	ms := e.openStream(orgPath(alice.PersonalOrg, "/events"), alice.Token, "")
	defer ms.close()
	ms.next()
	as := e.openStream(devicePath(a2.ID, "/events"), a2.Token, "")
	defer as.close()
	as.next()
	e.signal(a2, a.ID, []byte("hi"))
	e.register(alice.Token, alice.PersonalOrg, "marker", newKey(t), 201)
	assert.Equal(t, api.EventDeviceAdded, ms.next().Type, "organization stream")
	assert.Equal(t, api.EventDeviceAdded, as.next().Type, "other device's stream")
}

// TestEphemeralSharedStore runs two coordinators on one store, as replicas would: neither
// deletes an ephemeral device whose stream the other holds, however many sweeps pass — the
// presence row and LastSeenAt are in the store, not in the holder's memory — and once the
// stream is gone for the grace period, the device is deleted, whichever replica sweeps.
func TestEphemeralSharedStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const grace, sweep = time.Minute, 10 * time.Second
		e := newEnv(t, func(c *Config) { c.EphemeralGrace, c.Heartbeat, c.SweepInterval = grace, time.Second, sweep })
		cfg := e.cfg
		cfg.Store = e.store
		other, err := New(context.Background(), cfg)
		require.NoError(t, err)
		defer other.Close()
		alice := e.newUser("alice")
		eph := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{Ephemeral: true})
		d := e.register(eph.Secret, "", "eph", newKey(t), 201)
		s := e.openStream(devicePath(d.ID, "/events"), d.Token, "")
		s.next()
		time.Sleep(5 * grace)
		synctest.Wait()
		require.False(t, other.hub.isOnline(d.ID), "the other replica holds no stream of the device")
		var dev store.Device
		require.NoError(t, e.store.Tx(context.Background(), func(tx store.Tx) (err error) {
			dev, err = tx.GetDevice(context.Background(), d.ID)
			return err
		}), "a replica deleted the connected device")
		assert.WithinDuration(t, time.Now(), dev.LastSeenAt, grace/3+time.Second, "last seen recorded by the stream")

		s.close()
		synctest.Wait()
		time.Sleep(grace + sweep + time.Second)
		synctest.Wait()
		err = e.store.Tx(context.Background(), func(tx store.Tx) error {
			_, err := tx.GetDevice(context.Background(), d.ID)
			return err
		})
		require.ErrorIs(t, err, store.ErrNotFound, "the device a grace period after its stream ended")
	})
}

// TestEphemeralGraceFromStart stops the coordinator for longer than the grace period: an
// ephemeral device that was gone all that time gets the grace period again from the start, so
// that devices can come back after an outage of the whole service.
func TestEphemeralGraceFromStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const grace, sweep = time.Minute, 10 * time.Second
		e := newEnv(t, func(c *Config) { c.EphemeralGrace, c.SweepInterval = grace, sweep })
		alice := e.newUser("alice")
		eph := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{Ephemeral: true})
		d := e.register(eph.Secret, "", "eph", newKey(t), 201)
		back := e.register(eph.Secret, "", "back", newKey(t), 201)
		e.stop()
		time.Sleep(10 * grace)
		e.start()
		time.Sleep(grace - sweep)
		synctest.Wait()
		e.device(alice.Token, d.ID)
		// One comes back within the grace period and stays; the other does not and goes.
		s := e.openStream(devicePath(back.ID, "/events"), back.Token, "")
		defer s.close()
		s.next()
		time.Sleep(2 * sweep)
		synctest.Wait()
		e.fails(404, api.CodeNotFound, "GET", devicePath(d.ID, ""), alice.Token, nil)
		time.Sleep(5 * grace)
		e.device(alice.Token, back.ID)
	})
}
