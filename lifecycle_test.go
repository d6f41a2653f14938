package nexodus_test

import (
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

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
		if err != nil {
			t.Fatalf("cycle %d: up: %v", i, err)
		}
		if deviceID == "" {
			deviceID = st.DeviceID
		} else if st.DeviceID != deviceID {
			t.Fatalf("cycle %d: device %s, want %s", i, st.DeviceID, deviceID)
		}
		if err := echoOnce(testCtx(t), n, "tcp", "peer:7000"); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if err := n.Close(); err != nil {
			t.Fatalf("cycle %d: close: %v", i, err)
		}
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
			t.Fatalf("cycle %d: %d goroutines, %d before:\n%s", i, runtime.NumGoroutine(), baseline, buf.String())
		}
	}
	if grown := int64(heapInUse()) - int64(before); grown > 10<<20 {
		t.Errorf("heap grew %d KiB over %d reopen cycles", grown>>10, cycles)
	}
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
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "device.json")); err != nil {
		t.Fatal(err)
	}
	again := e.node("srv", func(n *nexodus.Node) { n.StateDir = dir })
	second, err := again.Up(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if second.DeviceID != first.DeviceID || second.TunnelIPv4 != first.TunnelIPv4 || second.TunnelIPv6 != first.TunnelIPv6 {
		t.Fatalf("re-registration changed the device: %+v → %+v", first, second)
	}
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
