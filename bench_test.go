package nexodus_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/nexodustest"
	"github.com/nexodus-sdk/nexodus/relay"
)

// BenchmarkUpToFirstByte measures connection setup as an application sees it: a new node's Up
// until the first echoed byte from a peer that was already running, by hostname. The peer
// learns of the new node from the coordinator at the same moment, so this includes the
// "first packet to a freshly learned peer" path. Reports p50 and p99.
//
//	go test -run '^$' -bench UpToFirstByte -benchtime 30x .
func BenchmarkUpToFirstByte(b *testing.B) {
	e := newEnv(b)
	srv := e.up("srv")
	serveEcho(b, srv, ":7000")
	var samples []time.Duration
	b.ResetTimer()
	// The timed section: its checks use b.Fatal, not require (whose t.Helper walks the stack).
	for i := 0; i < b.N; i++ {
		n := &nexodus.Node{ControlURL: e.kit.URL, AuthKey: e.key, Hostname: fmt.Sprintf("c%d", i)}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := n.Up(ctx); err != nil {
			b.Fatal(err)
		}
		if err := echoOnce(ctx, n, "tcp", "srv:7000"); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
		cancel()
		b.StopTimer()
		n.Close()
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(samples[(len(samples)*99)/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkIdleNodeMemory reports the Go heap an idle node costs, with its peer connected:
// the heap after GC with N extra nodes up, minus before, divided by N.
//
//	go test -run '^$' -bench IdleNodeMemory -benchtime 10x .
func BenchmarkIdleNodeMemory(b *testing.B) {
	e := newEnv(b)
	e.up("anchor")
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse + ms.StackInuse
	}
	before := heap()
	nodes := make([]*nexodus.Node, 0, b.N)
	for i := 0; i < b.N; i++ {
		nodes = append(nodes, e.up(fmt.Sprintf("idle%d", i)))
	}
	after := heap()
	b.ReportMetric(float64(after-before)/float64(b.N)/(1<<20), "MiB/node")
	for _, n := range nodes {
		n.Close()
	}
}

// pathEnv is two nodes of one organization, srv and cli, with a TURN relay configured.
type pathEnv struct {
	srv, cli *nexodus.Node
}

// newPathEnv starts a coordinator, a real TURN relay (package relay, on 127.0.0.1) and two
// nodes; with relayed, both nodes send everything through the relay (SetRelayOnly). It waits
// until cli has the expected path to srv and an echo works.
func newPathEnv(b *testing.B, relayed bool) *pathEnv {
	b.Helper()
	ctx := testCtx(b)
	secret := []byte("relay-secret-for-benchmarks-0123")
	rl, err := relay.New(ctx, relay.Config{
		Secret: secret, PublicIP: netip.MustParseAddr("127.0.0.1"), UDPListen: []string{"127.0.0.1:0"},
		Logger: testLogger(b).With("component", "relay"),
	})
	require.NoError(b, err, "start the relay")
	b.Cleanup(func() { rl.Close() })
	e := newEnvConfig(b, func(c *coordinator.Config) {
		c.RelaySecret = secret
		c.TURNServers = []string{"turn:" + rl.Addrs().UDP[0].String() + "?transport=udp"}
	})
	var mods []nexodustest.NodeOption
	if relayed {
		mods = append(mods, nexodustest.ForceRelay())
	}
	pe := &pathEnv{srv: e.up("srv", mods...), cli: e.up("cli", mods...)}
	serveEcho(b, pe.srv, ":7000")
	want := nexodus.PathDirect
	if relayed {
		want = nexodus.PathRelayed
	}
	require.Eventually(b, func() bool {
		ectx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		for _, p := range pe.cli.Peers() {
			if p.Hostname == "srv" && p.Path == want {
				return echoOnce(ectx, pe.cli, "tcp", "srv:7000") == nil
			}
		}
		return false
	}, waitTimeout, waitTick, "cli's "+string(want)+" path to srv and an echo")
	return pe
}

// BenchmarkNodePaths measures two Nodes talking directly and the same through a real TURN relay,
// in the same run: bulk TCP in 1 MiB operations (every byte checked) and 1-byte TCP round
// trips (p50, p99). The relay forwards ciphertext; the figures show what it costs.
//
//	go test -run '^$' -bench NodePaths -benchtime 2s .
func BenchmarkNodePaths(b *testing.B) {
	for _, path := range []string{"direct", "relayed"} {
		b.Run(path, func(b *testing.B) {
			pe := newPathEnv(b, path == "relayed")
			b.Run("throughput", func(b *testing.B) { benchNodeThroughput(b, pe) })
			b.Run("rtt", func(b *testing.B) { benchNodeRTT(b, pe) })
		})
	}
}

var benchPattern = func() []byte {
	p := make([]byte, 64<<10)
	for i := range p {
		p[i] = byte(i * 13)
	}
	return p
}()

func benchNodeThroughput(b *testing.B, pe *pathEnv) {
	const op = 1 << 20
	total := int64(b.N) * op
	ln, err := pe.srv.Listen("tcp", ":0")
	require.NoError(b, err)
	defer ln.Close()
	result := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			result <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		var got int64
		for got < total {
			n, err := c.Read(buf)
			for i := 0; i < n; {
				off := int((got + int64(i)) % int64(len(benchPattern)))
				m := min(n-i, len(benchPattern)-off)
				if !bytes.Equal(buf[i:i+m], benchPattern[off:off+m]) {
					result <- fmt.Errorf("corrupted data at byte %d", got+int64(i))
					return
				}
				i += m
			}
			got += int64(n)
			if err != nil && got < total {
				result <- fmt.Errorf("after %d bytes: %w", got, err)
				return
			}
		}
		_, err = c.Write([]byte{1})
		result <- err
	}()
	ctx := testCtx(b)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	c, err := pe.cli.Dial(ctx, "tcp", net.JoinHostPort("srv", port))
	require.NoError(b, err)
	defer c.Close()
	b.SetBytes(op)
	b.ResetTimer()
	// The timed section: its checks use b.Fatal, not require (whose t.Helper walks the stack).
	for sent := int64(0); sent < total; sent += int64(len(benchPattern)) {
		if _, err := c.Write(benchPattern); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	require.NoError(b, <-result, "the receiving end")
}

func benchNodeRTT(b *testing.B, pe *pathEnv) {
	c, err := pe.cli.Dial(testCtx(b), "tcp", "srv:7000")
	require.NoError(b, err)
	defer c.Close()
	buf := []byte{0}
	rtts := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	// The timed section: its checks use b.Fatal, not require (whose t.Helper walks the stack).
	for range b.N {
		start := time.Now()
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(rtts)
	b.ReportMetric(float64(rtts[len(rtts)/2])/1e3, "p50-µs")
	b.ReportMetric(float64(rtts[len(rtts)*99/100])/1e3, "p99-µs")
}

// BenchmarkBackOnline measures how soon nodes are back on their coordinator after an outage
// long enough for their reconnect backoff to reach its cap: the time from the coordinator's
// return until each node's event stream is connected again (p50 and max over the nodes of
// every iteration).
//
//	go test -run '^$' -bench BackOnline -benchtime 2x .
func BenchmarkBackOnline(b *testing.B) {
	const nodes, outage = 20, 12 * time.Second
	kit := nexodustest.New(b, nexodustest.WithoutRelay())
	ns := make([]*nexodus.Node, nodes)
	for i := range ns {
		ns[i] = kit.Up(fmt.Sprintf("n%d", i))
	}
	var samples []time.Duration
	b.ResetTimer()
	for range b.N {
		kit.StopCoordinator()
		for _, n := range ns {
			nexodustest.WaitFor(b, "control stream down", func() (bool, bool) { return true, !n.Status().ControlConnected })
		}
		time.Sleep(outage) // the outage itself, not a wait for a condition
		back := time.Now()
		kit.StartCoordinator()
		pending := slices.Clone(ns)
		for len(pending) > 0 {
			pending = slices.DeleteFunc(pending, func(n *nexodus.Node) bool {
				if n.Status().ControlConnected {
					samples = append(samples, time.Since(back))
					return true
				}
				return false
			})
			time.Sleep(5 * time.Millisecond) // sampling interval of the measurement
		}
	}
	b.StopTimer()
	slices.Sort(samples)
	b.ReportMetric(samples[len(samples)/2].Seconds(), "p50-s")
	b.ReportMetric(samples[len(samples)-1].Seconds(), "max-s")
}

// BenchmarkRestartEmptyState measures a crash followed by a restart without the state dir:
// from the new node's start until it is up under its old hostname, which the offline device
// registered with the same key gives up (the bound: 10 s).
//
//	go test -run '^$' -bench RestartEmptyState -benchtime 10x .
func BenchmarkRestartEmptyState(b *testing.B) {
	kit := nexodustest.New(b, nexodustest.WithoutRelay())
	first := kit.Up("db", nexodustest.WithStateDir(b.TempDir()))
	if err := first.Close(); err != nil { // the crash: the device stays, offline
		b.Fatal(err)
	}
	var samples []time.Duration
	b.ResetTimer()
	for range b.N {
		n := kit.Node("db", nexodustest.WithStateDir(b.TempDir()))
		start := time.Now()
		if _, err := n.Up(kit.Context()); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
		if got := n.Status().Hostname; got != "db" {
			b.Fatalf("came back as %q", got)
		}
		b.StopTimer()
		if err := n.Close(); err != nil { // the next crash
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(samples[len(samples)-1].Microseconds())/1000, "max-ms")
}
