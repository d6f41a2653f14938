package nexodus_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/nexodustest"
)

// TestReopenSameStateDirLeaksNothing opens and closes a node on one state directory many times:
// it must come back as the same device every time, and after each Close the process must be
// back to the goroutines it had before (goleak in TestMain checks the very end only).
func TestReopenSameStateDirLeaksNothing(t *testing.T) {
	e := newEnv(t)
	peer := e.up("peer")
	serveEcho(t, peer, ":7000")
	dir := t.TempDir()
	var deviceID string
	cycle := func(i int) {
		n := e.node("reopened", func(n *nexodus.Node) { n.StateDir = dir })
		st, err := n.Up(testCtx(t))
		require.NoError(t, err, "cycle %d: up", i)
		if deviceID == "" {
			deviceID = st.DeviceID
		} else {
			require.Equal(t, deviceID, st.DeviceID, "cycle %d: the device of the first cycle", i)
		}
		require.NoError(t, echoOnce(testCtx(t), n, "tcp", "peer:7000"), "cycle %d", i)
		require.NoError(t, n.Close(), "cycle %d: close", i)
	}
	cycle(0) // warm up: the coordinator's and the peer's connections to this device exist now
	baseline := runtime.NumGoroutine()
	before := heapInUse()
	const cycles = 10
	for i := 1; i <= cycles; i++ {
		cycle(i)
		// Goroutines of the peer and the coordinator that served this node's streams end
		// moments after it closed.
		if !assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= baseline }, 10*time.Second, 10*time.Millisecond) {
			var buf bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&buf, 1)
			require.FailNowf(t, "goroutines left after Close", "cycle %d: %d goroutines, want at most the %d before:\n%s",
				i, runtime.NumGoroutine(), baseline, buf.String())
		}
	}
	grown := int64(heapInUse()) - int64(before)
	assert.LessOrEqual(t, grown, int64(10<<20), "heap grew %d KiB over %d reopen cycles, want at most 10 MiB", grown>>10, cycles)
}

// TestLostTokenGetsSameDeviceBack: a node that kept its key but lost its saved registration
// registers again with its registration key and gets its device and addresses back. The
// coordinator answers such a re-registration with a pending token only the key holder can
// open (a registration key alone cannot take a device over); the node uses it and goes on.
func TestLostTokenGetsSameDeviceBack(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	srv := e.up("srv", nexodustest.WithStateDir(dir))
	first := srv.Status()
	require.NoError(t, srv.Close())
	require.NoError(t, os.Remove(filepath.Join(dir, "device.json")))
	again := e.node("srv", func(n *nexodus.Node) { n.StateDir = dir })
	second, err := again.Up(testCtx(t))
	require.NoError(t, err)
	require.Equal(t, first.DeviceID, second.DeviceID, "re-registration changed the device ID: %+v → %+v", first, second)
	require.Equal(t, first.TunnelIPv4, second.TunnelIPv4, "re-registration changed the tunnel IPv4: %+v → %+v", first, second)
	require.Equal(t, first.TunnelIPv6, second.TunnelIPv6, "re-registration changed the tunnel IPv6: %+v → %+v", first, second)
	serveEcho(t, again, ":7000")
	cli := e.up("cli")
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Second)
		defer cancel()
		return echoOnce(ctx, cli, "tcp", "srv:7000") == nil
	}, waitTimeout, waitTick, "cli to reach the re-registered srv")
	// The node's control connection works with the new token.
	require.Eventually(t, func() bool { return again.Status().ControlConnected }, waitTimeout, waitTick, "the control stream after re-registration")
}
