package nexodus_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/nexodustest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testCtx bounds a test's network work: a hang becomes a failure, not a stuck CI run.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("NEXODUS_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// waitTimeout and waitTick are how long and how often tests poll with require.Eventually.
const (
	waitTimeout = 20 * time.Second
	waitTick    = 10 * time.Millisecond
)

// env is a test kit (coordinator, user, registration key) without a relay, as most tests
// here need no relay; the relay tests bring their own or use the kit's.
type env struct {
	t   testing.TB
	kit *nexodustest.Kit
	key string
}

func newEnv(t testing.TB) *env { return newEnvConfig(t, nil) }

// newEnvConfig is newEnv with the coordinator's configuration adjusted by configure (relays,
// STUN servers, ...).
func newEnvConfig(t testing.TB, configure func(*coordinator.Config)) *env {
	t.Helper()
	// No leak check per test: TestMain checks the whole package, and some tests close
	// parts of their own (taps, relays) after the kit.
	kit := nexodustest.New(t, nexodustest.WithLogger(testLogger(t)), nexodustest.WithoutRelay(), nexodustest.WithoutLeakCheck(),
		nexodustest.WithCoordinatorConfig(configure))
	return &env{t: t, kit: kit, key: kit.AuthKey}
}

// node makes a node of the kit's organization, closed at the end of the test.
func (e *env) node(hostname string, mod ...nexodustest.NodeOption) *nexodus.Node {
	return e.kit.Node(hostname, mod...)
}

func (e *env) up(hostname string, mod ...nexodustest.NodeOption) *nexodus.Node {
	e.t.Helper()
	return e.kit.Up(hostname, mod...)
}

func hasPeer(n *nexodus.Node, hostname string) bool {
	for _, p := range n.Peers() {
		if p.Hostname == hostname {
			return true
		}
	}
	return false
}

// serveEcho runs a TCP echo server on the node until the test ends.
func serveEcho(t testing.TB, n *nexodus.Node, addr string) {
	t.Helper()
	ln, err := n.Listen("tcp", addr)
	require.NoError(t, err, "listen on %s", addr)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  = map[net.Conn]bool{}
		closed bool
	)
	// Cleanups run before the node's Close (they were registered after it): a connection
	// whose client vanished without a FIN (its node closed, its path cut) would keep io.Copy
	// and this cleanup waiting forever, so they are closed here.
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				io.Copy(c, c)
			}()
		}
	}()
}

// echoOnce dials addr from n, sends a line and checks it comes back.
func echoOnce(ctx context.Context, n *nexodus.Node, network, addr string) error {
	c, err := n.Dial(ctx, network, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	msg := fmt.Sprintf("hello %s over %s\n", addr, network)
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg {
		return fmt.Errorf("echo: got %q, want %q", got, msg)
	}
	return nil
}

func TestThreeNodesReachEachOther(t *testing.T) {
	e := newEnv(t)
	names := []string{"alpha", "beta", "gamma"}
	nodes := map[string]*nexodus.Node{}
	for _, name := range names {
		nodes[name] = e.up(name)
	}
	for _, name := range names {
		serveEcho(t, nodes[name], ":7000")
		pc, err := nodes[name].ListenPacket("udp", ":7001")
		require.NoError(t, err, "%s: listen udp :7001", name)
		t.Cleanup(func() { pc.Close() })
		go func() { // UDP echo
			buf := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], from)
			}
		}()
	}
	for _, from := range names {
		for _, to := range names {
			if from == to {
				continue
			}
			st := nodes[to].Status()
			targets := map[string]string{
				"tcp by hostname": to + ":7000",
				"tcp by ipv4":     net.JoinHostPort(st.TunnelIPv4.String(), "7000"),
				"tcp by ipv6":     net.JoinHostPort(st.TunnelIPv6.String(), "7000"),
			}
			for what, addr := range targets {
				ctx, cancel := context.WithTimeout(testCtx(t), 15*time.Second)
				assert.NoError(t, echoOnce(ctx, nodes[from], "tcp", addr), "%s → %s %s", from, to, what)
				cancel()
			}
			assert.NoError(t, udpEcho(testCtx(t), nodes[from], to+":7001"), "%s → %s udp by hostname", from, to)
		}
	}
	for _, name := range names {
		require.Eventually(t, func() bool {
			for _, p := range nodes[name].Peers() {
				if p.LocalCandidate == "" {
					return false
				}
			}
			return true
		}, waitTimeout, waitTick, name+" to have an ICE path to every peer")
		st := nodes[name].Status()
		for _, p := range st.Peers {
			// One machine, no NAT: ICE can only have found host (or peer-reflexive) pairs.
			assert.Equal(t, nexodus.CandidateHost, p.LocalCandidate,
				"%s: peer %s: local end of the ICE pair %s→%s, want host pairs", name, p.Hostname, p.LocalCandidate, p.RemoteCandidate)
			assert.Contains(t, []nexodus.CandidateType{nexodus.CandidateHost, nexodus.CandidatePeerRefl}, p.RemoteCandidate,
				"%s: peer %s: remote end of the ICE pair %s→%s, want host pairs", name, p.Hostname, p.LocalCandidate, p.RemoteCandidate)
			assert.Equal(t, nexodus.TraversalConnected, p.Traversal.State, "%s: peer %s: traversal %s, want connected", name, p.Hostname, p.Traversal)
		}
		assert.Len(t, st.Peers, 2, "%s's peers", name)
		for _, p := range st.Peers {
			assert.Equal(t, nexodus.PathDirect, p.Path, "%s: peer %s: path", name, p.Hostname)
			assert.NotZero(t, p.RxBytes, "%s: peer %s: bytes received", name, p.Hostname)
			assert.NotZero(t, p.TxBytes, "%s: peer %s: bytes sent", name, p.Hostname)
			assert.False(t, p.LastHandshake.IsZero(), "%s: peer %s: no WireGuard handshake", name, p.Hostname)
		}
	}
}

// udpEcho sends datagrams until one comes back: UDP may lose the first while WireGuard
// makes its session.
func udpEcho(ctx context.Context, n *nexodus.Node, addr string) error {
	c, err := n.Dial(ctx, "udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 64)
	for ctx.Err() == nil {
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		k, err := c.Read(buf)
		if err == nil {
			if string(buf[:k]) != "ping" {
				return fmt.Errorf("got %q", buf[:k])
			}
			return nil
		}
	}
	return ctx.Err()
}

func TestHTTPClientAndWhoIs(t *testing.T) {
	e := newEnv(t)
	web := e.up("web")
	cli := e.up("cli")
	ln, err := web.Listen("tcp", ":80")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := web.WhoIs(r.RemoteAddr)
		if !ok {
			http.Error(w, "unknown", http.StatusForbidden)
			return
		}
		io.WriteString(w, p.Hostname)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	hc := cli.HTTPClient()
	t.Cleanup(hc.CloseIdleConnections)
	req, _ := http.NewRequestWithContext(testCtx(t), http.MethodGet, "http://web/", nil)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, "cli", string(body), "the caller as web's WhoIs saw it")
	_, ok := web.WhoIs("192.0.2.1:80")
	require.False(t, ok, "WhoIs vouched for an address outside the mesh")
}

func TestRestartKeepsAddressesAndPeersReconnect(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	srv := e.up("srv", nexodustest.WithStateDir(dir))
	first := srv.Status()
	serveEcho(t, srv, ":7000")
	cli := e.up("cli")
	require.NoError(t, echoOnce(testCtx(t), cli, "tcp", "srv:7000"))
	require.NoError(t, srv.Close())
	info, err := os.Stat(filepath.Join(dir, "wireguard.key"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "key file mode")

	// Same state dir, no auth key: the node must come back on its saved identity alone.
	again := e.node("srv", func(n *nexodus.Node) { n.StateDir = dir; n.AuthKey = "" })
	second, err := again.Up(testCtx(t))
	require.NoError(t, err)
	require.Equal(t, first.DeviceID, second.DeviceID, "restart changed the device ID: %+v → %+v", first, second)
	require.Equal(t, first.TunnelIPv4, second.TunnelIPv4, "restart changed the tunnel IPv4: %+v → %+v", first, second)
	require.Equal(t, first.TunnelIPv6, second.TunnelIPv6, "restart changed the tunnel IPv6: %+v → %+v", first, second)
	require.Equal(t, first.PublicKey, second.PublicKey, "restart changed the public key: %+v → %+v", first, second)
	serveEcho(t, again, ":7000")
	// The peer learns the new UDP port from the coordinator and reconnects.
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Second)
		defer cancel()
		return echoOnce(ctx, cli, "tcp", "srv:7000") == nil
	}, waitTimeout, waitTick, "cli to reach the restarted srv")
}

func TestDeletedDeviceDisappearsFromPeers(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var events []nexodus.PeerEvent
	watcher := e.up("watcher", func(n *nexodus.Node) {
		n.OnPeerChange = func(ev nexodus.PeerEvent) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}
	})
	doomed := e.up("doomed")
	require.Eventually(t, func() bool { return hasPeer(watcher, "doomed") }, waitTimeout, waitTick, "watcher to see doomed")
	require.NoError(t, e.kit.User.Client.DeleteDevice(testCtx(t), doomed.Status().DeviceID))
	require.Eventually(t, func() bool { return !hasPeer(watcher, "doomed") }, waitTimeout, waitTick, "doomed to leave watcher's peers")
	_, err := watcher.Dial(testCtx(t), "tcp", "doomed:80")
	require.ErrorIs(t, err, nexodus.ErrUnknownPeer, "dial to deleted peer")
	mu.Lock()
	defer mu.Unlock()
	var added, removed bool
	for _, ev := range events {
		if ev.Peer.Hostname != "doomed" {
			continue
		}
		added = added || ev.Type == nexodus.PeerAdded
		removed = removed || ev.Type == nexodus.PeerRemoved
	}
	require.True(t, added, "OnPeerChange saw no PeerAdded for doomed: %+v", events)
	require.True(t, removed, "OnPeerChange saw no PeerRemoved for doomed: %+v", events)
}

func TestEphemeralNodeRemovedOnClose(t *testing.T) {
	e := newEnv(t)
	watcher := e.up("watcher")
	temp := e.up("temp")
	id := temp.Status().DeviceID
	require.Eventually(t, func() bool { return hasPeer(watcher, "temp") }, waitTimeout, waitTick, "watcher to see temp")
	require.NoError(t, temp.Close())
	require.Eventually(t, func() bool { return !hasPeer(watcher, "temp") }, waitTimeout, waitTick, "temp to leave watcher's peers")
	_, err := e.kit.User.Client.GetDevice(testCtx(t), id)
	require.ErrorIs(t, err, client.ErrNotFound, "ephemeral device after Close: want not found")
}

func TestMovedDeviceSwitchesOrganization(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	org2, key2 := e.kit.NewOrganization(e.kit.User, "second")
	old := e.up("old")
	serveEcho(t, old, ":7000")
	newcomer := e.up("newcomer", func(n *nexodus.Node) { n.AuthKey = key2 })
	serveEcho(t, newcomer, ":7000")
	mover := e.up("mover")
	require.NoError(t, echoOnce(ctx, mover, "tcp", "old:7000"))
	require.False(t, hasPeer(mover, "newcomer"), "mover sees a device of another organization")

	dst := org2
	_, err := e.kit.User.Client.UpdateDevice(ctx, mover.Status().DeviceID, api.UpdateDeviceRequest{OrganizationID: &dst})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return mover.Status().OrganizationID == org2 && hasPeer(mover, "newcomer") && !hasPeer(mover, "old")
	}, waitTimeout, waitTick, "mover to join the second organization")
	require.Eventually(t, func() bool {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return echoOnce(c, mover, "tcp", "newcomer:7000") == nil
	}, waitTimeout, waitTick, "mover to reach newcomer")
	require.Eventually(t, func() bool { return !hasPeer(old, "mover") }, waitTimeout, waitTick, "old to forget mover")
	oldIP := old.Status().TunnelIPv4.String()
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	require.Error(t, echoOnce(short, mover, "tcp", net.JoinHostPort(oldIP, "7000")),
		"mover still reaches a device of the organization it left")
}

func TestCoordinatorRestartSurvived(t *testing.T) {
	e := newEnv(t)
	a := e.up("a")
	b := e.up("b")
	serveEcho(t, b, ":7000")
	require.NoError(t, echoOnce(testCtx(t), a, "tcp", "b:7000"))
	addr := strings.TrimPrefix(e.kit.URL, "http://")
	e.kit.StopCoordinator()
	require.Eventually(t, func() bool { return !a.Status().ControlConnected }, waitTimeout, waitTick, "a to notice the control plane is gone")
	// The data plane does not need the coordinator.
	require.NoError(t, echoOnce(testCtx(t), a, "tcp", "b:7000"), "data plane during coordinator outage")
	e.kit.StartCoordinator()
	require.Equal(t, addr, strings.TrimPrefix(e.kit.URL, "http://"), "the address the coordinator came back on")
	require.Eventually(t, func() bool { return a.Status().ControlConnected }, waitTimeout, waitTick, "a to reconnect")
	c := e.up("c")
	serveEcho(t, c, ":7000")
	require.Eventually(t, func() bool { return hasPeer(a, "c") }, waitTimeout, waitTick, "a to learn of c after the restart")
	require.NoError(t, echoOnce(testCtx(t), a, "tcp", "c:7000"))
}

func TestBadInputFailsFast(t *testing.T) {
	e := newEnv(t)
	n := e.up("n")
	ctx := testCtx(t)

	_, err := n.Dial(ctx, "tcp", "nobody:80")
	assert.ErrorIs(t, err, nexodus.ErrUnknownPeer, "unknown hostname")
	_, err = n.Dial(ctx, "tcp", "no-port")
	assert.Error(t, err, "dial to an address without port: want an error")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = n.Dial(cancelled, "tcp", "n:80")
	assert.Error(t, err, "dial with a cancelled context: want an error")

	wrongKey := e.node("wrong", func(n *nexodus.Node) { n.AuthKey = "nxk_bogus.bogus" })
	_, err = wrongKey.Up(ctx)
	assert.ErrorIs(t, err, client.ErrUnauthorized, "wrong key")
	noKey := e.node("nokey", func(n *nexodus.Node) { n.AuthKey = "" })
	_, err = noKey.Up(ctx)
	assert.ErrorIs(t, err, nexodus.ErrNoAuthKey, "no key")
	for what, bad := range map[string]func(*nexodus.Node){
		"ControlURL ftp://x":          func(n *nexodus.Node) { n.ControlURL = "ftp://x" },
		"Hostname \"not a hostname\"": func(n *nexodus.Node) { n.Hostname = "not a hostname" },
		"ListenPort 70000":            func(n *nexodus.Node) { n.ListenPort = 70000 },
	} {
		_, err = e.node("x", bad).Up(ctx)
		assert.ErrorIs(t, err, nexodus.ErrConfig, "bad config: %s", what)
	}

	// A coordinator that is not there: the caller's deadline bounds the wait.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadURL := "http://" + ln.Addr().String()
	ln.Close()
	dead := e.node("dead", func(n *nexodus.Node) { n.ControlURL = deadURL })
	short, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	_, err = dead.Up(short)
	assert.Error(t, err, "Up with an unreachable coordinator: want an error")

	require.NoError(t, n.Close())
	assert.ErrorIs(t, n.Close(), net.ErrClosed, "second Close")
	_, err = n.Dial(ctx, "tcp", "n:80")
	assert.ErrorIs(t, err, net.ErrClosed, "dial on closed node")
	_, err = n.Listen("tcp", ":80")
	assert.ErrorIs(t, err, net.ErrClosed, "listen on closed node")
}

func TestLazyStartAndCloseBeforeStart(t *testing.T) {
	e := newEnv(t)
	srv := e.node("lazy-srv")
	serveEcho(t, srv, ":7000") // Listen starts the node
	cli := e.node("lazy-cli")
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Second)
		defer cancel()
		return echoOnce(ctx, cli, "tcp", "lazy-srv:7000") == nil // Dial starts the node
	}, waitTimeout, waitTick, "lazy-cli to reach lazy-srv")
	never := e.node("never")
	require.NoError(t, never.Close(), "Close of a node never started")
	_, err := never.Up(testCtx(t))
	require.ErrorIs(t, err, net.ErrClosed, "Up after Close")
}

func TestNodesOpenAndCloseWithoutLeaks(t *testing.T) {
	e := newEnv(t)
	peer := e.up("peer")
	serveEcho(t, peer, ":7000")
	cycle := func(i int) {
		n := e.node(fmt.Sprintf("cycle%d", i))
		require.NoError(t, echoOnce(testCtx(t), n, "tcp", "peer:7000"), "cycle %d", i)
		require.NoError(t, n.Close(), "cycle %d: close", i)
	}
	for i := range 3 { // warm caches and pools first
		cycle(i)
	}
	before := heapInUse()
	const cycles = 20
	for i := range cycles {
		cycle(3 + i)
	}
	// An idle node holds over a MiB of heap (BenchmarkIdleNodeMemory); keeping even half of
	// the closed ones alive would exceed this bound.
	grown := int64(heapInUse()) - int64(before)
	assert.LessOrEqual(t, grown, int64(10<<20), "heap grew %d KiB over %d open/close cycles, want at most 10 MiB", grown>>10, cycles)
	// Ephemeral nodes removed themselves: the peer table is back to empty.
	require.Eventually(t, func() bool { return len(peer.Peers()) == 0 }, waitTimeout, waitTick, "cycled nodes to leave")
	// goleak in TestMain checks that no node left a goroutine behind.
}

func heapInUse() uint64 {
	// sync.Pool contents survive one collection in the victim cache: collect until they are gone.
	for range 4 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// While a node rebuilds its tunnel after an address change (it moved to another organization),
// Status, WhoIs and Dial answer at once rather than wait for the rebuild: they used to block on
// the node's lock for the whole close-and-build.
func TestReaddressDoesNotBlockQueries(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	org2, _ := e.kit.NewOrganization(e.kit.User, "second")
	peer := e.up("peer")
	answered := make(chan error, 1)
	mover := e.up("mover", func(mover *nexodus.Node) {
		nexodus.SetReaddressHook(mover, func() {
			// The rebuild is in progress on the node's own goroutine: the queries must not
			// wait for it to end, so they run beside it and the hook waits for them.
			done := make(chan error, 1)
			go func() {
				st := mover.Status()
				mover.WhoIs(st.TunnelIPv4.String())
				c, err := mover.Dial(ctx, "tcp", net.JoinHostPort(peer.Status().TunnelIPv4.String(), "7000"))
				if err == nil {
					c.Close()
					err = errors.New("dial succeeded on a closed data plane")
				} else if !errors.Is(err, net.ErrClosed) && !errors.Is(err, nexodus.ErrUnknownPeer) {
					// The old organization's peer is no peer any more: refused at once, or the
					// closed data plane answers.
					err = fmt.Errorf("dial during the rebuild: %w, want ErrUnknownPeer or net.ErrClosed", err)
				} else {
					err = nil
				}
				done <- err
			}()
			select {
			case err := <-done:
				answered <- err
			case <-time.After(20 * time.Second): // a bound for "never answered", not a timing
				answered <- errors.New("Status/WhoIs/Dial blocked while the tunnel was rebuilt")
			}
		})
	})
	dst := org2
	_, err := e.kit.User.Client.UpdateDevice(ctx, mover.Status().DeviceID, api.UpdateDeviceRequest{OrganizationID: &dst})
	require.NoError(t, err)
	select {
	case err := <-answered:
		require.NoError(t, err, "queries during the tunnel rebuild")
	case <-ctx.Done():
		require.FailNow(t, "the tunnel was never rebuilt")
	}
	require.Eventually(t, func() bool {
		return mover.Status().OrganizationID == org2 && !hasPeer(mover, "peer")
	}, waitTimeout, waitTick, "mover in the second organization")
}
