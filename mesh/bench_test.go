package mesh

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/key"
	"github.com/stretchr/testify/require"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// The data-plane benchmarks run every measurement on three stacks in the same run, so that the
// figures can be read as ratios on a shared, noisy machine:
//
//   - kernel: plain TCP/UDP over the kernel's 127.0.0.1, the ceiling;
//   - stock: wireguard-go with its own StdNetBind and tun/netstack, configured with plain
//     address endpoints — nothing of ours, the baseline;
//   - mesh: this package.
//
// Two nodes of one process talk over 127.0.0.1. Every byte is checked on arrival.
//
//	go test -run '^$' -bench . -benchmem ./mesh/
//	go run ./internal/benchtable        # the same, as a table of ratios

// benchNode is what a benchmark needs from a stack.
type benchNode interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
	Listen(network, address string) (net.Listener, error)
	ListenPacket(network, address string) (net.PacketConn, error)
	// addr is where the other node reaches this one's port.
	addr(port int) string
	Close() error
}

type meshBenchNode struct {
	*Mesh
	self netip.Addr
}

func (m meshBenchNode) addr(port int) string { return tcpAddr(m.self, port) }

// stockNode is wireguard-go + StdNetBind + netstack, nothing of ours.
type stockNode struct {
	dev  *device.Device
	tnet *netstack.Net
	self netip.Addr
	priv key.Key
	port uint16

	closed atomic.Bool
}

func (s *stockNode) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return s.tnet.DialContext(ctx, network, address)
}

func (s *stockNode) Listen(_, address string) (net.Listener, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, err
	}
	return s.tnet.ListenTCPAddrPort(ap)
}

func (s *stockNode) ListenPacket(_, address string) (net.PacketConn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, err
	}
	return s.tnet.ListenUDPAddrPort(ap)
}

func (s *stockNode) addr(port int) string { return tcpAddr(s.self, port) }

// Close closes the device; a second call returns an error wrapping net.ErrClosed, as the Mesh's.
func (s *stockNode) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("stock node: %w", net.ErrClosed)
	}
	s.dev.Close()
	return nil
}

func newStockNode(b testing.TB, addr netip.Addr) *stockNode {
	b.Helper()
	priv := newKey(b)
	tdev, tnet, err := netstack.CreateNetTUN([]netip.Addr{addr}, nil, DefaultMTU)
	require.NoError(b, err)
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), newDeviceLogger(discardLogger()))
	require.NoError(b, dev.IpcSet("private_key="+priv.Hex()+"\nlisten_port=0\n"))
	require.NoError(b, dev.Up())
	s := &stockNode{dev: dev, tnet: tnet, self: addr, priv: priv}
	cfg, _ := dev.IpcGet()
	for _, line := range strings.Split(cfg, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			p, _ := strconv.Atoi(v)
			s.port = uint16(p)
		}
	}
	return s
}

func stockConnect(b testing.TB, x, y *stockNode) {
	b.Helper()
	set := func(n *stockNode, peer *stockNode) {
		cfg := fmt.Sprintf("public_key=%s\nendpoint=127.0.0.1:%d\nallowed_ip=%s/32\n",
			peer.priv.Public().Hex(), peer.port, peer.self)
		require.NoError(b, n.dev.IpcSet(cfg))
	}
	set(x, y)
	set(y, x)
}

// kernelNode is the kernel's loopback: no tunnel at all.
type kernelNode struct{}

func (kernelNode) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}
func (kernelNode) Listen(network, address string) (net.Listener, error) {
	return net.Listen(network, address)
}
func (kernelNode) ListenPacket(network, address string) (net.PacketConn, error) {
	return net.ListenPacket(network, address)
}
func (kernelNode) addr(port int) string { return tcpAddr(loopback, port) }
func (kernelNode) Close() error         { return nil }

var (
	benchAddr1 = netip.MustParseAddr("100.64.0.1")
	benchAddr2 = netip.MustParseAddr("100.64.0.2")
)

// benchPair returns two connected nodes of the given stack. Nodes are closed by the cleanup.
func benchPair(b testing.TB, stack string) (client, server benchNode) {
	b.Helper()
	switch stack {
	case "mesh":
		x, y := newTestNode(b, 1), newTestNode(b, 2)
		connectAll(b, x, y)
		return meshBenchNode{x.m, x.v4}, meshBenchNode{y.m, y.v4}
	case "stock":
		x, y := newStockNode(b, benchAddr1), newStockNode(b, benchAddr2)
		stockConnect(b, x, y)
		b.Cleanup(func() { x.Close(); y.Close() })
		return x, y
	default:
		return kernelNode{}, kernelNode{}
	}
}

var (
	stacks       = []string{"kernel", "stock", "mesh"}
	tunnelStacks = []string{"stock", "mesh"}
)

// benchPort gives every benchmark connection its own port, so that kernel-stack runs never
// collide with a socket of an earlier run in TIME_WAIT.
var benchPort atomic.Int32

func nextPort() int { return 20000 + int(benchPort.Add(1)) }

// pattern is the bulk benchmarks' data: a stream of bytes a receiver can check at any offset.
var pattern = func() []byte {
	p := make([]byte, 64<<10)
	for i := range p {
		p[i] = byte(i * 7)
	}
	return p
}()

// sendStream writes total bytes of pattern to w.
func sendStream(w io.Writer, total int64) error {
	for sent := int64(0); sent < total; {
		n := int(min(int64(len(pattern)), total-sent))
		if _, err := w.Write(pattern[:n]); err != nil {
			return fmt.Errorf("after %d bytes: %w", sent, err)
		}
		sent += int64(n)
	}
	return nil
}

// checkStream reads total bytes from r and checks them against pattern.
func checkStream(r io.Reader, total int64) error {
	buf := make([]byte, 64<<10)
	var got int64
	for got < total {
		n, err := r.Read(buf[:min(int64(len(buf)), total-got)])
		for i := 0; i < n; {
			off := int((got + int64(i)) % int64(len(pattern)))
			m := min(n-i, len(pattern)-off)
			if !bytes.Equal(buf[i:i+m], pattern[off:off+m]) {
				return fmt.Errorf("corrupted data at byte %d", got+int64(i))
			}
			i += m
		}
		got += int64(n)
		if err != nil && got < total {
			return fmt.Errorf("after %d bytes: %w", got, err)
		}
	}
	return nil
}

// tcpPair dials a fresh connection from client to server and returns both ends.
func tcpPair(b testing.TB, client, server benchNode) (c, s net.Conn) {
	b.Helper()
	port := nextPort()
	l, err := server.Listen("tcp", server.addr(port))
	require.NoError(b, err)
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err = client.DialContext(ctx, "tcp", server.addr(port))
	require.NoError(b, err)
	var ok bool
	select {
	case s, ok = <-accepted:
		require.True(b, ok, "accept failed")
	case <-ctx.Done():
		c.Close()
		b.Fatal("connected, but the server did not accept in time")
	}
	b.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

const bulkOp = 1 << 20 // one operation of the bulk benchmarks: 1 MiB

// BenchmarkTCPThroughput moves data in 1 MiB operations over one TCP connection: one-way (the
// dialer sends) and both-ways (both ends send b.N MiB at once; MB/s counts both directions).
func BenchmarkTCPThroughput(b *testing.B) {
	for _, dir := range []string{"one-way", "both-ways"} {
		for _, stack := range stacks {
			b.Run(dir+"/"+stack, func(b *testing.B) {
				client, server := benchPair(b, stack)
				c, s := tcpPair(b, client, server)
				total := int64(b.N) * bulkOp
				var wg sync.WaitGroup
				errs := make(chan error, 3)
				run := func(f func() error) {
					wg.Add(1)
					go func() { defer wg.Done(); errs <- f() }()
				}
				b.SetBytes(bulkOp)
				if dir == "both-ways" {
					b.SetBytes(2 * bulkOp)
				}
				b.ReportAllocs()
				b.ResetTimer()
				run(func() error { return checkStream(s, total) })
				if dir == "both-ways" {
					run(func() error { return sendStream(s, total) })
					run(func() error { return checkStream(c, total) })
				}
				require.NoError(b, sendStream(c, total))
				wg.Wait()
				b.StopTimer()
				close(errs)
				for err := range errs {
					require.NoError(b, err)
				}
			})
		}
	}
}

// udpBenchSize is the payload of one datagram of BenchmarkUDPThroughput: what fits the tunnel's
// MTU with IPv4 and UDP headers (1420 - 28) rounded down.
const udpBenchSize = 1380

// BenchmarkUDPThroughput sends b.N datagrams, unpaced, and reports what arrived: recv-MB/s (the
// receiver's goodput) and loss-%. Every datagram carries its sequence number and a pattern that
// depends on it; a corrupted or duplicated datagram fails the benchmark.
func BenchmarkUDPThroughput(b *testing.B) {
	for _, stack := range stacks {
		b.Run(stack, func(b *testing.B) {
			client, server := benchPair(b, stack)
			port := nextPort()
			pc, err := server.ListenPacket("udp", server.addr(port))
			require.NoError(b, err)
			defer pc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := client.DialContext(ctx, "udp", server.addr(port))
			require.NoError(b, err)
			defer c.Close()

			flow := newRxFlow()
			var last atomic.Int64 // unix ns of the last datagram received
			errc := make(chan error, 1)
			go func() {
				seen := make(map[uint64]bool)
				buf := make([]byte, 2048)
				for {
					n, _, err := pc.ReadFrom(buf)
					if err != nil {
						errc <- nil
						return
					}
					if n != udpBenchSize {
						errc <- fmt.Errorf("datagram of %d bytes", n)
						return
					}
					seq := binary.BigEndian.Uint64(buf)
					for i := 8; i < n; i++ {
						if buf[i] != byte(seq)+byte(i) {
							errc <- fmt.Errorf("datagram %d corrupted", seq)
							return
						}
					}
					if seen[seq] {
						errc <- fmt.Errorf("datagram %d twice", seq)
						return
					}
					seen[seq] = true
					last.Store(time.Now().UnixNano())
					flow.add(1)
				}
			}()

			msg := make([]byte, udpBenchSize)
			b.SetBytes(udpBenchSize)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				binary.BigEndian.PutUint64(msg, uint64(i))
				for j := 8; j < len(msg); j++ {
					msg[j] = byte(i) + byte(j)
				}
				if _, err := c.Write(msg); err != nil { // not require: see BenchmarkTCPRTT
					b.Fatal(err)
				}
			}
			b.StopTimer()
			// Whatever is still in flight arrives within moments; a quiet spell ends the count.
			flow.settle(int64(b.N), 100*time.Millisecond)
			pc.Close()
			require.NoError(b, <-errc)
			got := flow.got.Load()
			elapsed := time.Duration(last.Load() - start.UnixNano())
			if got > 0 && elapsed > 0 {
				b.ReportMetric(float64(got*udpBenchSize)/elapsed.Seconds()/1e6, "recv-MB/s")
			}
			b.ReportMetric(100*float64(int64(b.N)-got)/float64(b.N), "loss-%")
		})
	}
}

// BenchmarkTCPRTT is a 1-byte TCP ping-pong; it reports p50 and p99 round trips.
func BenchmarkTCPRTT(b *testing.B) {
	for _, stack := range stacks {
		b.Run(stack, func(b *testing.B) {
			client, server := benchPair(b, stack)
			c, s := tcpPair(b, client, server)
			go io.Copy(s, s)
			buf := []byte{0}
			rtts := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				// Plain checks in the timed loop: require calls t.Helper, which walks the stack.
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
				rtts = append(rtts, time.Since(start))
			}
			b.StopTimer()
			reportPercentiles(b, rtts, time.Microsecond, "µs")
		})
	}
}

// reportPercentiles reports the p50 and p99 of samples in unit.
func reportPercentiles(b *testing.B, samples []time.Duration, unit time.Duration, name string) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2])/float64(unit), "p50-"+name)
	b.ReportMetric(float64(samples[len(samples)*99/100])/float64(unit), "p99-"+name)
}

// BenchmarkSetup measures connection setup: two fresh nodes, configured with each other, from
// the moment the second one exists to the first echoed byte over TCP (the WireGuard handshake
// included). Reports p50 and p99.
func BenchmarkSetup(b *testing.B) {
	for _, stack := range tunnelStacks {
		b.Run(stack, func(b *testing.B) {
			b.ReportAllocs()
			samples := make([]time.Duration, 0, b.N)
			for range b.N {
				start := time.Now()
				client, server := benchPair(b, stack)
				port := nextPort()
				l, err := server.Listen("tcp", server.addr(port))
				require.NoError(b, err)
				go func() {
					c, err := l.Accept()
					if err == nil {
						io.Copy(c, c)
						c.Close()
					}
				}()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				c, err := client.DialContext(ctx, "tcp", server.addr(port))
				require.NoError(b, err)
				buf := []byte{7}
				c.Write(buf)
				_, err = io.ReadFull(c, buf)
				require.NoError(b, err)
				samples = append(samples, time.Since(start))
				cancel()
				b.StopTimer()
				c.Close()
				l.Close()
				client.Close()
				server.Close()
				b.StartTimer()
			}
			reportPercentiles(b, samples, time.Millisecond, "ms")
		})
	}
}

// BenchmarkIdleMemory reports the memory an idle node costs, with a live session to its peer:
// the Go heap and stacks in use after GC with b.N extra nodes, minus before, per node.
func BenchmarkIdleMemory(b *testing.B) {
	for _, stack := range tunnelStacks {
		b.Run(stack, func(b *testing.B) {
			before := heapInUse()
			for range b.N {
				client, server := benchPair(b, stack)
				c, s := tcpPair(b, client, server)
				go io.Copy(s, s)
				buf := []byte{1}
				c.Write(buf)
				_, err := io.ReadFull(c, buf)
				require.NoError(b, err)
			}
			after := heapInUse()
			b.ReportMetric(float64(int64(after)-int64(before))/float64(2*b.N)/(1<<20), "MiB/node")
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// peakRSSEnv names the stack a child process of BenchmarkPeakRSS measures.
const peakRSSEnv = "MESH_PEAKRSS_STACK"

// peakRSSTotal is what the child moves: 512 MiB one-way, then 512 MiB each way at once.
const peakRSSTotal = 512 << 20

// BenchmarkPeakRSS reports the peak resident set size of a process whose only work is two nodes
// of one stack moving 512 MiB one-way over TCP, then 512 MiB each way at once. Each measurement
// is a fresh child process (the test binary itself, running TestPeakRSSChild), since a process's
// peak never goes down.
func BenchmarkPeakRSS(b *testing.B) {
	for _, stack := range stacks {
		b.Run(stack, func(b *testing.B) {
			var peak float64
			for range b.N {
				cmd := exec.Command(os.Args[0], "-test.run=^TestPeakRSSChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), peakRSSEnv+"="+stack)
				out, err := cmd.CombinedOutput()
				require.NoError(b, err, "child:\n%s", out)
				kib, err := parsePeakRSS(out)
				require.NoError(b, err, "child:\n%s", out)
				peak = max(peak, float64(kib)/1024)
			}
			b.ReportMetric(peak, "peak-RSS-MiB")
		})
	}
}

func parsePeakRSS(out []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "PEAK-RSS-KiB "); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("no PEAK-RSS-KiB line")
}

// TestPeakRSSChild is BenchmarkPeakRSS's child process; it does nothing in a normal test run.
func TestPeakRSSChild(t *testing.T) {
	stack := os.Getenv(peakRSSEnv)
	if stack == "" {
		t.Skip("run by BenchmarkPeakRSS")
	}
	client, server := benchPair(t, stack)
	c, s := tcpPair(t, client, server)
	for _, both := range []bool{false, true} {
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		run := func(f func() error) {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- f() }()
		}
		run(func() error { return checkStream(s, peakRSSTotal) })
		run(func() error { return sendStream(c, peakRSSTotal) })
		if both {
			run(func() error { return checkStream(c, peakRSSTotal) })
			run(func() error { return sendStream(s, peakRSSTotal) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	}
	kib, err := maxRSSKiB()
	if err != nil {
		t.Skip(err)
	}
	fmt.Printf("PEAK-RSS-KiB %d\n", kib)
}
