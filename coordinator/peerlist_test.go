package coordinator

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// onlineByID maps device IDs to their Online.
func onlineByID(ds []api.Device) map[string]bool {
	m := map[string]bool{}
	for _, d := range ds {
		m[d.ID] = d.Online
	}
	return m
}

// The syncs of several streams and the peer-list GET at one revision share one serialized
// list, yet each shows who is online when it is sent: going online appends no event, so it
// must not be frozen into the cached list.
func TestPeerListSharedAndOnlineFresh(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	org := e.newOrg(alice, "shared", "10.3.0.0/24")
	a := e.register(alice.Token, org.ID, "a", newKey(t), 201)
	b := e.register(alice.Token, org.ID, "b", newKey(t), 201)

	as := e.openStream(devicePath(a.ID, "/events"), a.Token, "")
	defer as.close()
	sa := as.next()
	require.Equal(t, api.EventSync, sa.Type)
	assert.Equal(t, map[string]bool{a.ID: true, b.ID: false}, onlineByID(sa.Event.Devices), "a's sync: a is online")

	bs := e.openStream(devicePath(b.ID, "/events"), b.Token, "")
	defer bs.close()
	sb := bs.next()
	require.Equal(t, api.EventSync, sb.Type)
	assert.Equal(t, sa.ID, sb.ID, "both syncs at one revision")
	assert.Equal(t, map[string]bool{a.ID: true, b.ID: true}, onlineByID(sb.Event.Devices), "b's sync of the same revision: both online")

	var got []api.Device
	e.call("GET", orgPath(org.ID, "/devices"), alice.Token, nil, 200, &got)
	require.Len(t, got, 2)
	assert.Equal(t, sb.Event.Devices, got, "the GET answers what the sync sent")

	// A change makes a new list: the next reader sees it.
	name := "b2"
	e.call("PATCH", devicePath(b.ID, ""), b.Token, api.UpdateDeviceRequest{Hostname: &name}, 200, nil)
	ev := as.next()
	require.Equal(t, api.EventDeviceUpdated, ev.Type, "a delta, not a sync")
	e.call("GET", orgPath(org.ID, "/devices"), alice.Token, nil, 200, &got)
	// Listed by creation time then ID: two devices made in the same instant may come either way.
	require.ElementsMatch(t, []string{a.ID, b.ID}, deviceIDs(got))
	hostnames := map[string]string{}
	for _, d := range got {
		hostnames[d.ID] = d.Hostname
	}
	assert.Equal(t, "b2", hostnames[b.ID], "GET after the change")
}

// A move logs no device list: a small marker addressed to the moved device, which its stream
// turns into a sync of the new organization — also when it resumes from before the move.
func TestMoveLogsNoDeviceList(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	src := e.newOrg(alice, "src", "10.4.0.0/24")
	dst := e.newOrg(alice, "dst", "10.5.0.0/24")
	d := e.register(alice.Token, src.ID, "mover", newKey(t), 201)
	there := e.register(alice.Token, dst.ID, "there", newKey(t), 201)

	ds := e.openStream(devicePath(d.ID, "/events"), d.Token, "")
	first := ds.next()
	require.Equal(t, api.EventSync, first.Type)
	ds.close()

	e.call("PATCH", devicePath(d.ID, ""), alice.Token, api.UpdateDeviceRequest{OrganizationID: &dst.ID}, 200, nil)
	var logged []store.Event
	require.NoError(t, e.store.View(context.Background(), func(tx store.Tx) error {
		var err error
		logged, err = tx.ListEvents(context.Background(), dst.ID, d.ID, 0, 0)
		return err
	}))
	var marker *store.Event
	for i := range logged {
		if logged[i].Type == api.EventSync {
			marker = &logged[i]
		}
	}
	require.NotNil(t, marker, "the move's marker in the new organization's log")
	assert.Equal(t, d.ID, marker.TargetDeviceID)
	var body api.Event
	require.NoError(t, json.Unmarshal(marker.Data, &body))
	assert.Empty(t, body.Devices, "the marker carries no device list")
	assert.Less(t, len(marker.Data), 200, "the marker is small")

	// Resuming from before the move: the stream starts over with the new organization's list.
	rs := e.openStream(devicePath(d.ID, "/events"), d.Token, first.ID)
	defer rs.close()
	ev := rs.nextOf(api.EventSync)
	assert.Equal(t, dst.ID, ev.Event.OrganizationID)
	assert.Equal(t, sorted(d.ID, there.ID), sorted(deviceIDs(ev.Event.Devices)...))
	rev, err := strconv.ParseInt(ev.ID, 10, 64)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, rev, marker.Revision, "the sync covers the marker")
	// And goes on with deltas.
	e.call("DELETE", devicePath(there.ID, ""), alice.Token, nil, 204, nil)
	gone := rs.next()
	require.Equal(t, api.EventDeviceRemoved, gone.Type)
	assert.Equal(t, there.ID, gone.Event.Device.ID)
}

// The cache keeps one list per organization and at most peerCacheSize lists; a failed load is
// not kept.
func TestPeerCacheBounded(t *testing.T) {
	c := newPeerCache()
	ctx := context.Background()
	loads := 0
	load := func() (*peerList, error) { loads++; return &peerList{ids: []string{"x"}}, nil }
	for i := range peerCacheSize + 5 {
		_, err := c.get(ctx, peerKey{org: strconv.Itoa(i), rev: 1}, load)
		require.NoError(t, err)
	}
	assert.Len(t, c.entries, peerCacheSize)
	_, err := c.get(ctx, peerKey{org: "0", rev: 1}, load)
	require.NoError(t, err)
	assert.Equal(t, peerCacheSize+6, loads, "the least recently used was dropped")
	_, err = c.get(ctx, peerKey{org: "0", rev: 1}, load)
	require.NoError(t, err)
	assert.Equal(t, peerCacheSize+6, loads, "a hit loads nothing")
	_, err = c.get(ctx, peerKey{org: "0", rev: 2}, load)
	require.NoError(t, err)
	n := 0
	for k := range c.entries {
		if k.org == "0" {
			n++
		}
	}
	assert.Equal(t, 1, n, "a newer list replaces the organization's older one")
	_, err = c.get(ctx, peerKey{org: "f", rev: 1}, func() (*peerList, error) { return nil, assert.AnError })
	require.ErrorIs(t, err, assert.AnError)
	assert.NotContains(t, c.entries, peerKey{org: "f", rev: 1}, "a failed load is not kept")
}
