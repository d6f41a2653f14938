package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/nexodustest"
)

// nxcat listen exits non-zero with the reason when its device is deleted.
func TestListenExitsWhenCutOff(t *testing.T) {
	kit := nexodustest.New(t, nexodustest.WithoutRelay())
	ctx, cancel := context.WithCancel(kit.Context())
	defer cancel()
	var out, errOut syncBuffer
	code := make(chan int, 1)
	go func() {
		args := []string{"-control", kit.URL, "-authkey", kit.AuthKey, "-hostname", "srv", "listen", "7000"}
		code <- run(ctx, args, strings.NewReader(""), &out, &errOut, noEnv)
	}()
	require.Eventually(t, func() bool { return strings.Contains(errOut.String(), "listening on") },
		nexodustest.Timeout, 10*time.Millisecond, "the listener to start")
	devs, err := kit.User.Client.ListDevicesInOrganization(kit.Context(), kit.User.OrgID)
	require.NoError(t, err)
	require.Len(t, devs, 1)
	require.NoError(t, kit.User.Client.DeleteDevice(kit.Context(), devs[0].ID))
	select {
	case c := <-code:
		assert.Equal(t, 1, c)
		assert.Contains(t, errOut.String(), "device was removed")
	case <-time.After(nexodustest.Timeout):
		t.Fatal("nxcat listen still running after its device was deleted")
	}
}
