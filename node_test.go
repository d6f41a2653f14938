package nexodus_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/internal/devcoord"
	"github.com/nexodus-sdk/nexodus/natt"
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

type env struct {
	t      testing.TB
	coord  *devcoord.Coordinator
	tenant *devcoord.Tenant
	key    string
}

func newEnv(t testing.TB) *env { return newEnvConfig(t, nil) }

// newEnvConfig is newEnv with the coordinator's configuration adjusted by configure (relays,
// STUN servers, ...).
func newEnvConfig(t testing.TB, configure func(*coordinator.Config)) *env {
	t.Helper()
	ctx := testCtx(t)
	coord, err := devcoord.Start(ctx, filepath.Join(t.TempDir(), "coord.db"), devcoord.Options{
		Logger:    testLogger(t).With("component", "coordinator"),
		Configure: configure,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { coord.Close() })
	tenant, err := coord.NewTenant(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	key, err := tenant.RegKey(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, coord: coord, tenant: tenant, key: key}
}

// node makes a node of the tenant's organization, closed at the end of the test.
func (e *env) node(hostname string, mod ...func(*nexodus.Node)) *nexodus.Node {
	n := &nexodus.Node{
		ControlURL: e.coord.URL,
		AuthKey:    e.key,
		Hostname:   hostname,
		Logger:     testLogger(e.t).With("node", hostname),
	}
	for _, m := range mod {
		m(n)
	}
	e.t.Cleanup(func() { n.Close() })
	return n
}

func (e *env) up(hostname string, mod ...func(*nexodus.Node)) *nexodus.Node {
	e.t.Helper()
	n := e.node(hostname, mod...)
	if _, err := n.Up(testCtx(e.t)); err != nil {
		e.t.Fatalf("up %s: %v", hostname, err)
	}
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
	if err != nil {
		t.Fatal(err)
	}
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
		if err != nil {
			t.Fatal(err)
		}
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
				if err := echoOnce(ctx, nodes[from], "tcp", addr); err != nil {
					t.Errorf("%s → %s %s: %v", from, to, what, err)
				}
				cancel()
			}
			if err := udpEcho(testCtx(t), nodes[from], to+":7001"); err != nil {
				t.Errorf("%s → %s udp by hostname: %v", from, to, err)
			}
		}
	}
	for _, name := range names {
		waitFor(t, name+" to have an ICE path to every peer", func() bool {
			for _, p := range nodes[name].Peers() {
				if p.LocalCandidate == "" {
					return false
				}
			}
			return true
		})
		st := nodes[name].Status()
		for _, p := range st.Peers {
			// One machine, no NAT: ICE can only have found host (or peer-reflexive) pairs.
			if p.LocalCandidate != nexodus.CandidateHost ||
				(p.RemoteCandidate != nexodus.CandidateHost && p.RemoteCandidate != nexodus.CandidatePeerRefl) {
				t.Errorf("%s: peer %s: ICE pair %s→%s, want host pairs", name, p.Hostname, p.LocalCandidate, p.RemoteCandidate)
			}
			if p.Traversal != "connected" {
				t.Errorf("%s: peer %s: traversal %q, want connected", name, p.Hostname, p.Traversal)
			}
		}
		if len(st.Peers) != 2 {
			t.Errorf("%s has %d peers, want 2", name, len(st.Peers))
		}
		for _, p := range st.Peers {
			if p.Path != nexodus.PathDirect || p.RxBytes == 0 || p.TxBytes == 0 || p.LastHandshake.IsZero() {
				t.Errorf("%s: peer %s: path %s rx %d tx %d handshake %v", name, p.Hostname, p.Path, p.RxBytes, p.TxBytes, p.LastHandshake)
			}
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
	if err != nil {
		t.Fatal(err)
	}
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
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "cli" {
		t.Fatalf("web saw the caller as %q, want cli", body)
	}
	if _, ok := web.WhoIs("192.0.2.1:80"); ok {
		t.Fatal("WhoIs vouched for an address outside the mesh")
	}
}

func TestRestartKeepsAddressesAndPeersReconnect(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	srv := e.node("srv", func(n *nexodus.Node) { n.StateDir = dir })
	first, err := srv.Up(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, srv, ":7000")
	cli := e.up("cli")
	if err := echoOnce(testCtx(t), cli, "tcp", "srv:7000"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "wireguard.key"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}

	// Same state dir, no auth key: the node must come back on its saved identity alone.
	again := e.node("srv", func(n *nexodus.Node) { n.StateDir = dir; n.AuthKey = "" })
	second, err := again.Up(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if second.DeviceID != first.DeviceID || second.TunnelIPv4 != first.TunnelIPv4 ||
		second.TunnelIPv6 != first.TunnelIPv6 || second.PublicKey != first.PublicKey {
		t.Fatalf("restart changed identity: %+v → %+v", first, second)
	}
	serveEcho(t, again, ":7000")
	// The peer learns the new UDP port from the coordinator and reconnects.
	waitFor(t, "cli to reach the restarted srv", func() bool {
		ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Second)
		defer cancel()
		return echoOnce(ctx, cli, "tcp", "srv:7000") == nil
	})
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
	waitFor(t, "watcher to see doomed", func() bool { return hasPeer(watcher, "doomed") })
	if err := e.tenant.Client.DeleteDevice(testCtx(t), doomed.Status().DeviceID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "doomed to leave watcher's peers", func() bool { return !hasPeer(watcher, "doomed") })
	_, err := watcher.Dial(testCtx(t), "tcp", "doomed:80")
	if !errors.Is(err, nexodus.ErrUnknownPeer) {
		t.Fatalf("dial to deleted peer: err = %v, want ErrUnknownPeer", err)
	}
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
	if !added || !removed {
		t.Fatalf("OnPeerChange saw added=%v removed=%v for doomed: %+v", added, removed, events)
	}
}

func TestEphemeralNodeRemovedOnClose(t *testing.T) {
	e := newEnv(t)
	watcher := e.up("watcher")
	temp := e.up("temp")
	id := temp.Status().DeviceID
	waitFor(t, "watcher to see temp", func() bool { return hasPeer(watcher, "temp") })
	if err := temp.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "temp to leave watcher's peers", func() bool { return !hasPeer(watcher, "temp") })
	if _, err := e.tenant.Client.GetDevice(testCtx(t), id); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("ephemeral device after Close: err = %v, want not found", err)
	}
}

func TestMovedDeviceSwitchesOrganization(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	org2, err := e.tenant.Client.CreateOrganization(ctx, api.CreateOrganizationRequest{Name: "second"})
	if err != nil {
		t.Fatal(err)
	}
	key2, err := e.tenant.RegKey(ctx, org2.ID)
	if err != nil {
		t.Fatal(err)
	}
	old := e.up("old")
	serveEcho(t, old, ":7000")
	newcomer := e.up("newcomer", func(n *nexodus.Node) { n.AuthKey = key2 })
	serveEcho(t, newcomer, ":7000")
	mover := e.up("mover")
	if err := echoOnce(ctx, mover, "tcp", "old:7000"); err != nil {
		t.Fatal(err)
	}
	if hasPeer(mover, "newcomer") {
		t.Fatal("mover sees a device of another organization")
	}

	dst := org2.ID
	if _, err := e.tenant.Client.UpdateDevice(ctx, mover.Status().DeviceID, api.UpdateDeviceRequest{OrganizationID: &dst}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "mover to join the second organization", func() bool {
		return mover.Status().OrganizationID == org2.ID && hasPeer(mover, "newcomer") && !hasPeer(mover, "old")
	})
	waitFor(t, "mover to reach newcomer", func() bool {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return echoOnce(c, mover, "tcp", "newcomer:7000") == nil
	})
	waitFor(t, "old to forget mover", func() bool { return !hasPeer(old, "mover") })
	oldIP := old.Status().TunnelIPv4.String()
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := echoOnce(short, mover, "tcp", net.JoinHostPort(oldIP, "7000")); err == nil {
		t.Fatal("mover still reaches a device of the organization it left")
	}
}

func TestCoordinatorRestartSurvived(t *testing.T) {
	e := newEnv(t)
	a := e.up("a")
	b := e.up("b")
	serveEcho(t, b, ":7000")
	if err := echoOnce(testCtx(t), a, "tcp", "b:7000"); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(e.coord.URL, "http://")
	if err := e.coord.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to notice the control plane is gone", func() bool { return !a.Status().ControlConnected })
	// The data plane does not need the coordinator.
	if err := echoOnce(testCtx(t), a, "tcp", "b:7000"); err != nil {
		t.Fatalf("data plane during coordinator outage: %v", err)
	}
	if err := e.coord.Restart(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimPrefix(e.coord.URL, "http://"); got != addr {
		t.Fatalf("coordinator came back on %s, not %s", got, addr)
	}
	waitFor(t, "a to reconnect", func() bool { return a.Status().ControlConnected })
	c := e.up("c")
	serveEcho(t, c, ":7000")
	waitFor(t, "a to learn of c after the restart", func() bool { return hasPeer(a, "c") })
	if err := echoOnce(testCtx(t), a, "tcp", "c:7000"); err != nil {
		t.Fatal(err)
	}
}

func TestBadInputFailsFast(t *testing.T) {
	e := newEnv(t)
	n := e.up("n")
	ctx := testCtx(t)

	if _, err := n.Dial(ctx, "tcp", "nobody:80"); !errors.Is(err, nexodus.ErrUnknownPeer) {
		t.Errorf("unknown hostname: %v", err)
	}
	if _, err := n.Dial(ctx, "tcp", "no-port"); err == nil {
		t.Error("address without port: no error")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := n.Dial(cancelled, "tcp", "n:80"); err == nil {
		t.Error("dial with cancelled context: no error")
	}

	wrongKey := e.node("wrong", func(n *nexodus.Node) { n.AuthKey = "nxk_bogus.bogus" })
	if _, err := wrongKey.Up(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("wrong key: %v, want ErrUnauthorized", err)
	}
	noKey := e.node("nokey", func(n *nexodus.Node) { n.AuthKey = "" })
	if _, err := noKey.Up(ctx); !errors.Is(err, nexodus.ErrNoAuthKey) {
		t.Errorf("no key: %v, want ErrNoAuthKey", err)
	}
	for _, bad := range []func(*nexodus.Node){
		func(n *nexodus.Node) { n.ControlURL = "ftp://x" },
		func(n *nexodus.Node) { n.Hostname = "not a hostname" },
		func(n *nexodus.Node) { n.ListenPort = 70000 },
	} {
		if _, err := e.node("x", bad).Up(ctx); !errors.Is(err, nexodus.ErrConfig) {
			t.Errorf("bad config: %v, want ErrConfig", err)
		}
	}

	// A coordinator that is not there: the caller's deadline bounds the wait.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()
	dead := e.node("dead", func(n *nexodus.Node) { n.ControlURL = deadURL })
	short, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	if _, err := dead.Up(short); err == nil {
		t.Error("unreachable coordinator: no error")
	}

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	if _, err := n.Dial(ctx, "tcp", "n:80"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("dial on closed node: %v, want net.ErrClosed", err)
	}
	if _, err := n.Listen("tcp", ":80"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listen on closed node: %v, want net.ErrClosed", err)
	}
}

func TestLazyStartAndCloseBeforeStart(t *testing.T) {
	e := newEnv(t)
	srv := e.node("lazy-srv")
	serveEcho(t, srv, ":7000") // Listen starts the node
	cli := e.node("lazy-cli")
	waitFor(t, "lazy-cli to reach lazy-srv", func() bool {
		ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Second)
		defer cancel()
		return echoOnce(ctx, cli, "tcp", "lazy-srv:7000") == nil // Dial starts the node
	})
	never := e.node("never")
	if err := never.Close(); err != nil {
		t.Fatalf("Close of a node never started: %v", err)
	}
	if _, err := never.Up(testCtx(t)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Up after Close: %v", err)
	}
}

func TestNodesOpenAndCloseWithoutLeaks(t *testing.T) {
	e := newEnv(t)
	peer := e.up("peer")
	serveEcho(t, peer, ":7000")
	cycle := func(i int) {
		n := e.node(fmt.Sprintf("cycle%d", i))
		if err := echoOnce(testCtx(t), n, "tcp", "peer:7000"); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if err := n.Close(); err != nil {
			t.Fatalf("cycle %d: close: %v", i, err)
		}
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
	if grown := int64(heapInUse()) - int64(before); grown > 10<<20 {
		t.Errorf("heap grew %d KiB over %d open/close cycles", grown>>10, cycles)
	}
	// Ephemeral nodes removed themselves: the peer table is back to empty.
	waitFor(t, "cycled nodes to leave", func() bool { return len(peer.Peers()) == 0 })
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

// Peer.Traversal: a peer NAT traversal has no state for yet reads "new", like one whose first
// session has not started, never "" or "waiting" (which programs take for a verdict).
func TestTraversalString(t *testing.T) {
	for _, tc := range []struct {
		st   natt.PathStatus
		ok   bool
		want string
	}{
		{natt.PathStatus{}, false, "new"},
		{natt.PathStatus{State: natt.StateNew}, true, "new"},
		{natt.PathStatus{State: natt.StateChecking}, true, "checking"},
		{natt.PathStatus{State: natt.StateWaiting, Reason: "ICE failed"}, true, "waiting: ICE failed"},
		{natt.PathStatus{State: natt.StateConnected, Reason: "stale", Path: natt.Path{Remote: netip.MustParseAddrPort("192.0.2.1:1")}}, true, "connected"},
	} {
		if got := nexodus.TraversalString(tc.st, tc.ok); got != tc.want {
			t.Errorf("TraversalString(%+v, %v) = %q, want %q", tc.st, tc.ok, got, tc.want)
		}
	}
}

// While a node rebuilds its tunnel after an address change (it moved to another organization),
// Status, WhoIs and Dial answer at once rather than wait for the rebuild: they used to block on
// the node's lock for the whole close-and-build.
func TestReaddressDoesNotBlockQueries(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	org2, err := e.tenant.Client.CreateOrganization(ctx, api.CreateOrganizationRequest{Name: "second"})
	if err != nil {
		t.Fatal(err)
	}
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
				} else if !errors.Is(err, net.ErrClosed) {
					err = fmt.Errorf("dial during the rebuild: %w, want net.ErrClosed", err)
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
	dst := org2.ID
	if _, err := e.tenant.Client.UpdateDevice(ctx, mover.Status().DeviceID, api.UpdateDeviceRequest{OrganizationID: &dst}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the tunnel was never rebuilt")
	}
	waitFor(t, "mover in the second organization", func() bool {
		return mover.Status().OrganizationID == org2.ID && !hasPeer(mover, "peer")
	})
}

// A host with more interface addresses than a device may publish keeps its reflexive address
// and its LAN addresses; loopback ones go first. The reflexive one used to be appended only if
// there was room, after loopback.
func TestPublishedEndpointsKeepReflexive(t *testing.T) {
	var addrs []netip.Addr
	addrs = append(addrs, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"))
	for i := range api.MaxEndpoints + 2 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}))
	}
	addrs = append(addrs, netip.MustParseAddr("127.0.0.2"))
	refl := netip.MustParseAddrPort("203.0.113.7:40000")
	eps := nexodus.PublishedEndpoints(addrs, 51820, refl)
	if len(eps) != api.MaxEndpoints {
		t.Fatalf("%d endpoints, want %d", len(eps), api.MaxEndpoints)
	}
	if eps[0].Source != api.EndpointReflexive || eps[0].Address != refl.String() {
		t.Fatalf("first endpoint %+v, want the reflexive %v", eps[0], refl)
	}
	for _, ep := range eps[1:] {
		ap := netip.MustParseAddrPort(ep.Address)
		if ep.Source != api.EndpointLocal || ap.Addr().IsLoopback() || ap.Port() != 51820 {
			t.Errorf("endpoint %+v: want LAN addresses only once they fill the list", ep)
		}
	}

	// With room, loopback is published too (peers on the same machine use it), after the rest.
	eps = nexodus.PublishedEndpoints(addrs[:4], 51820, netip.AddrPort{})
	want := []string{"10.0.0.1:51820", "10.0.0.2:51820", "127.0.0.1:51820", "[::1]:51820"}
	if len(eps) != len(want) {
		t.Fatalf("endpoints %+v, want %v", eps, want)
	}
	for i, ep := range eps {
		if ep.Address != want[i] || ep.Source != api.EndpointLocal {
			t.Errorf("endpoint %d: %+v, want local %s", i, ep, want[i])
		}
	}
}

// Device records come from the coordinator (the peer list on the event stream): network input.
// Whatever they hold, the node either refuses a record or makes a WireGuard peer of it whose
// allowed IPs are masked prefixes and whose endpoints are usable addresses.
func FuzzDevicePeer(f *testing.F) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	f.Add(key, "100.64.0.2", "fd00::2", "10.1.0.0/16", "192.0.2.7:51820", "db")
	f.Add("not-base64", "100.64.0.300", "", "10.1.0.1/16", "[::1]:0", "")
	f.Add(key, "", "", "::/0", "192.0.2.7", "a.b")
	f.Fuzz(func(t *testing.T, pub, v4, v6, prefix, endpoint, hostname string) {
		d := api.Device{
			ID: "dev", Hostname: hostname, PublicKey: pub, TunnelIPv4: v4, TunnelIPv6: v6,
			ChildPrefixes: []string{prefix},
			Endpoints:     []api.Endpoint{{Source: api.EndpointLocal, Address: endpoint}},
		}
		mp, p, err := nexodus.DevicePeer(d)
		if p.DeviceID != "dev" || p.Path != nexodus.PathNone {
			t.Fatalf("peer %+v", p)
		}
		if err != nil {
			return
		}
		for _, pfx := range mp.AllowedIPs {
			if !pfx.IsValid() || pfx != pfx.Masked() {
				t.Fatalf("allowed IP %v of %+v: not a masked prefix", pfx, d)
			}
		}
		for _, ep := range mp.Endpoints {
			if !ep.IsValid() {
				t.Fatalf("endpoint %v of %+v", ep, d)
			}
		}
	})
}
