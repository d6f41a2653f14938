package coordinator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func TestFreeHostname(t *testing.T) {
	devs := []store.Device{{ID: "1", Hostname: "db"}, {ID: "2", Hostname: "DB-1"}}
	assert.Equal(t, "db-2", freeHostname(devs, "db"), "taken names compare case-insensitively")
	long := strings.Repeat("a", api.MaxHostnameLength-1) + "-"
	got := freeHostname([]store.Device{{Hostname: long}}, long)
	assert.LessOrEqual(t, len(got), api.MaxHostnameLength)
	assert.NoError(t, validHostname(got), got)
	assert.True(t, strings.HasSuffix(got, "a-1"))
}

// The hostname rule's "offline" spans replicas: a holder whose stream is open on another
// coordinator sharing the store keeps its name (the newcomer gets name-1); once that stream
// has ended, a newcomer with the same registration key takes the name over.
func TestHostnameOfflineAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	cfg := e.cfg
	cfg.Store = e.store
	other, err := New(context.Background(), cfg)
	require.NoError(t, err)
	defer other.Close()
	hs := httptest.NewServer(other)
	defer hs.Close()

	alice := e.newUser("alice")
	key := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{})
	first := e.register(key.Secret, "", "db", newKey(t), 201)

	// first's stream is held by the other replica: its presence row is written before the
	// stream's headers.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", hs.URL+devicePath(first.ID, "/events"), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+first.Token)
	resp, err := hs.Client().Do(req)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	assert.False(t, e.coord.hub.isOnline(first.ID), "not online on this replica")

	second := e.register(key.Secret, "", "db", newKey(t), 201)
	var got api.Device
	e.call("GET", devicePath(second.ID, ""), alice.Token, nil, 200, &got)
	assert.Equal(t, "db-1", got.Hostname, "the holder is online on the other replica")

	cancel()
	resp.Body.Close()
	require.Eventually(t, func() bool { return !other.hub.isOnline(first.ID) }, 10*time.Second, time.Millisecond, "stream ended")
	// The stream's end removes the presence row right after the in-memory count.
	require.Eventually(t, func() bool {
		var online []string
		require.NoError(t, e.store.View(context.Background(), func(tx store.Tx) (err error) {
			online, err = tx.OnlineDevices(context.Background(), alice.PersonalOrg, time.Now())
			return err
		}))
		return !slices.Contains(online, first.ID)
	}, 10*time.Second, time.Millisecond, "presence row removed")
	third := e.register(key.Secret, "", "db", newKey(t), 201)
	e.call("GET", devicePath(third.ID, ""), alice.Token, nil, 200, &got)
	assert.Equal(t, "db", got.Hostname, "the offline holder is replaced")
	e.fails(404, api.CodeNotFound, "GET", devicePath(first.ID, ""), alice.Token, nil)
}
