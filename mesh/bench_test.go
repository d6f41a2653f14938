package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// Benchmarks compare the Mesh with the stock stack — wireguard-go with conn.NewDefaultBind and
// tun/netstack, configured with plain address endpoints — in the same run:
//
//	go test -run '^$' -bench . -benchmem ./mesh/

// benchNode is what a benchmark needs from either stack.
type benchNode interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
	Listen(network, address string) (net.Listener, error)
	Close() error
}

type meshBenchNode struct{ *Mesh }

// stockNode is wireguard-go + StdNetBind + netstack, nothing of ours.
type stockNode struct {
	dev  *device.Device
	tnet *netstack.Net
	priv [32]byte
	port uint16
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

func (s *stockNode) Close() error { s.dev.Close(); return nil }

func newStockNode(b testing.TB, addr netip.Addr) *stockNode {
	b.Helper()
	priv, _ := GeneratePrivateKey()
	tdev, tnet, err := netstack.CreateNetTUN([]netip.Addr{addr}, nil, DefaultMTU)
	if err != nil {
		b.Fatal(err)
	}
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), newDeviceLogger(discardLogger()))
	if err := dev.IpcSet("private_key=" + hexKey(priv) + "\nlisten_port=0\n"); err != nil {
		b.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		b.Fatal(err)
	}
	s := &stockNode{dev: dev, tnet: tnet, priv: priv}
	cfg, _ := dev.IpcGet()
	for _, line := range strings.Split(cfg, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			p, _ := strconv.Atoi(v)
			s.port = uint16(p)
		}
	}
	return s
}

func stockConnect(b testing.TB, x, y *stockNode, xAddr, yAddr netip.Addr) {
	b.Helper()
	set := func(n *stockNode, peer *stockNode, peerAddr netip.Addr) {
		cfg := fmt.Sprintf("public_key=%s\nendpoint=127.0.0.1:%d\nallowed_ip=%s/32\n",
			hexKey(PublicKey(peer.priv)), peer.port, peerAddr)
		if err := n.dev.IpcSet(cfg); err != nil {
			b.Fatal(err)
		}
	}
	set(x, y, yAddr)
	set(y, x, xAddr)
}

var (
	benchAddr1 = netip.MustParseAddr("100.64.0.1")
	benchAddr2 = netip.MustParseAddr("100.64.0.2")
)

// benchPair returns two connected nodes of the given stack ("mesh" or "stock").
func benchPair(b *testing.B, stack string) (client, server benchNode) {
	b.Helper()
	switch stack {
	case "mesh":
		x, y := newTestNode(b, 1), newTestNode(b, 2)
		connectAll(b, x, y)
		return meshBenchNode{x.m}, meshBenchNode{y.m}
	default:
		x, y := newStockNode(b, benchAddr1), newStockNode(b, benchAddr2)
		stockConnect(b, x, y, benchAddr1, benchAddr2)
		b.Cleanup(func() { x.Close(); y.Close() })
		return x, y
	}
}

var stacks = []string{"stock", "mesh"}

// BenchmarkTCPThroughput moves data from client to server in 1 MiB operations and checks every
// byte on arrival.
func BenchmarkTCPThroughput(b *testing.B) {
	for _, stack := range stacks {
		b.Run(stack, func(b *testing.B) {
			client, server := benchPair(b, stack)
			l, err := server.Listen("tcp", "100.64.0.2:5001")
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			pattern := make([]byte, 64<<10)
			for i := range pattern {
				pattern[i] = byte(i * 7)
			}
			const opSize = 1 << 20
			total := int64(b.N) * opSize
			result := make(chan error, 1)
			go func() {
				c, err := l.Accept()
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
						off := int((got + int64(i)) % int64(len(pattern)))
						m := min(n-i, len(pattern)-off)
						if !bytes.Equal(buf[i:i+m], pattern[off:off+m]) {
							result <- errors.New("corrupted data")
							return
						}
						i += m
					}
					got += int64(n)
					if err != nil {
						result <- fmt.Errorf("after %d bytes: %w", got, err)
						return
					}
				}
				c.Write([]byte{1})
				result <- nil
			}()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := client.DialContext(ctx, "tcp", "100.64.0.2:5001")
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.SetBytes(opSize)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for sent := 0; sent < opSize; sent += len(pattern) {
					if _, err := c.Write(pattern); err != nil {
						b.Fatal(err)
					}
				}
			}
			if _, err := c.Read(make([]byte, 1)); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := <-result; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkTCPRTT is a 1-byte TCP ping-pong; it reports p50 and p99 round trips.
func BenchmarkTCPRTT(b *testing.B) {
	for _, stack := range stacks {
		b.Run(stack, func(b *testing.B) {
			client, server := benchPair(b, stack)
			l, err := server.Listen("tcp", "100.64.0.2:5002")
			if err != nil {
				b.Fatal(err)
			}
			serveEcho(b, l)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := client.DialContext(ctx, "tcp", "100.64.0.2:5002")
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := []byte{0}
			rtts := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
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
			b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkSetup measures two fresh nodes, configured with each other, to the first echoed
// byte over TCP.
func BenchmarkSetup(b *testing.B) {
	for _, stack := range stacks {
		b.Run(stack, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				start := time.Now()
				client, server := benchPair(b, stack)
				l, err := server.Listen("tcp", "100.64.0.2:5003")
				if err != nil {
					b.Fatal(err)
				}
				go func() {
					c, err := l.Accept()
					if err == nil {
						io.Copy(c, c)
						c.Close()
					}
				}()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				c, err := client.DialContext(ctx, "tcp", "100.64.0.2:5003")
				if err != nil {
					b.Fatal(err)
				}
				buf := []byte{7}
				c.Write(buf)
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
				_ = time.Since(start)
				cancel()
				c.Close()
				l.Close()
				client.Close()
				server.Close()
			}
		})
	}
}
