package nexodus_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/nexodustest"
)

// A node that lost its state dir comes back under its hostname: the offline device registered
// with the same key gives the name up. Anyone else who wants a name in use gets "name-N".
func TestHostnameNoLockoutNoTakeover(t *testing.T) {
	kit := nexodustest.New(t, nexodustest.WithoutRelay())
	ctx := kit.Context()
	first := kit.Up("db", nexodustest.WithStateDir(t.TempDir()))
	oldID := first.Status().DeviceID
	require.NoError(t, first.Close()) // a crash: the device stays, offline

	again := kit.Up("DB", nexodustest.WithStateDir(t.TempDir())) // empty state dir, same key
	st := again.Status()
	assert.Equal(t, "DB", st.Hostname, "the offline device with the same key gave its name up")
	assert.NotEqual(t, oldID, st.DeviceID)
	devs, err := kit.User.Client.ListDevicesInOrganization(ctx, kit.User.OrgID)
	require.NoError(t, err)
	require.Len(t, devs, 1, "the replaced device is gone")

	// Online holder, same key: no takeover.
	twin := kit.Up("db", nexodustest.WithStateDir(t.TempDir()))
	assert.Equal(t, "db-1", twin.Status().Hostname)

	// Another key, holder offline: no takeover either.
	require.NoError(t, again.Close())
	other := kit.Up("db", nexodustest.WithAuthKey(kit.RegKey(kit.User, "")), nexodustest.WithStateDir(t.TempDir()))
	assert.Equal(t, "db-2", other.Status().Hostname)
	nexodustest.WaitPeer(t, twin, "db-2")
}
