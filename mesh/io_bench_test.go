package mesh

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// The benchmarks here measure the Bind's side of the data plane alone, without wireguard-go and
// the netstack: WireGuard-sized datagrams through two packetIOs (BenchmarkPacketIO) or two Binds
// (BenchmarkBindTransport) over 127.0.0.1. One operation is one batch of ioBenchBatch datagrams
// handed to write/Send, as wireguard-go hands Bind.Send a batch; rx-pkt/s counts what arrived.
//
//	go test -run '^$' -bench 'PacketIO|BindTransport' -benchtime 2s ./mesh/

const (
	ioBenchBatch = 32
	// ioBenchSize is a transport message carrying a 1420-byte IP packet (DefaultMTU): 16 bytes
	// of header, the packet padded to 16 and a 16-byte tag.
	ioBenchSize = 16 + 1424 + 16
)

// ioVariant makes the packetIO of a socket, with or without offloads.
type ioVariant struct {
	name string
	new  func(tb testing.TB, c *net.UDPConn) packetIO
}

// ioVariants are the packetIOs the benchmarks compare: offloads forced off, GSO only, both (the
// default where the kernel has them), and both with wireguard-go's batch size.
func ioVariants() []ioVariant {
	v := func(name string, opts ioOptions) ioVariant {
		return ioVariant{name, func(_ testing.TB, c *net.UDPConn) packetIO { return newPacketIOOptions(c, opts) }}
	}
	return []ioVariant{
		v("plain", ioOptions{noGSO: true, noGRO: true}),
		v("gso", ioOptions{noGRO: true}),
		v("gso+gro", ioOptions{}),
		v("gso+gro-b128", ioOptions{batch: 128}),
	}
}

func benchUDPConn(tb testing.TB) *net.UDPConn {
	tb.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	_ = c.SetReadBuffer(socketBufferSize)
	_ = c.SetWriteBuffer(socketBufferSize)
	tb.Cleanup(func() { c.Close() })
	return c
}

// transportBatch returns n transport messages for receiver index idx, with distinct counters.
func transportBatch(n, size int, idx uint32) [][]byte {
	bufs := make([][]byte, n)
	for i := range bufs {
		b := make([]byte, size)
		b[0] = msgTransport
		binary.LittleEndian.PutUint32(b[4:8], idx)
		binary.LittleEndian.PutUint64(b[8:16], uint64(i))
		bufs[i] = b
	}
	return bufs
}

func receiveBuffers(n int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, 1<<16-1) // wireguard-go's MaxMessageSize
	}
	return bufs, make([]int, n)
}

// rxFlow keeps a sender at most window datagrams ahead of its receiver, so that the benchmarks
// measure what the receiver takes rather than how fast the kernel drops what it cannot.
type rxFlow struct {
	got      atomic.Int64
	progress chan struct{}
	timer    *time.Timer
	lost     int64 // datagrams the sender gave up waiting for
}

const rxWindow = 1024

func newRxFlow() *rxFlow {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &rxFlow{progress: make(chan struct{}, 1), timer: t}
}

// add counts n received datagrams.
func (f *rxFlow) add(n int) {
	f.got.Add(int64(n))
	select {
	case f.progress <- struct{}{}:
	default:
	}
}

// wait blocks while more than rxWindow of sent datagrams are outstanding; datagrams that do not
// arrive within 100 ms count as lost.
func (f *rxFlow) wait(sent int64) {
	for sent-f.lost-f.got.Load() > rxWindow {
		f.timer.Reset(100 * time.Millisecond)
		select {
		case <-f.progress:
			f.timer.Stop()
		case <-f.timer.C:
			f.lost = sent - f.got.Load()
		}
	}
}

// reportRx waits until want datagrams were counted or the count stops moving, and reports the
// receive rate over the whole run and the loss.
func reportRx(b *testing.B, got *atomic.Int64, want int64, start time.Time) {
	last, idle := got.Load(), time.Now()
	for got.Load() < want && time.Since(idle) < 200*time.Millisecond {
		time.Sleep(time.Millisecond)
		if n := got.Load(); n != last {
			last, idle = n, time.Now()
		}
	}
	n := got.Load()
	elapsed := time.Since(start)
	if n == last && n < want {
		elapsed -= time.Since(idle) // do not count the idle wait
	}
	b.StopTimer()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "rx-pkt/s")
	b.ReportMetric(100*float64(want-n)/float64(want), "loss-%")
}

func BenchmarkPacketIO(b *testing.B) {
	for _, v := range ioVariants() {
		b.Run(v.name, func(b *testing.B) {
			rxc, txc := benchUDPConn(b), benchUDPConn(b)
			rx, tx := v.new(b, rxc), v.new(b, txc)
			dst := rx.localAddr()
			flow := newRxFlow()
			done := make(chan struct{})
			go func() {
				defer close(done)
				bufs, sizes := receiveBuffers(rx.batchSize())
				srcs := make([]netip.AddrPort, len(bufs))
				for {
					n, err := rx.read(bufs, sizes, srcs)
					if err != nil {
						return
					}
					flow.add(n)
				}
			}()
			defer func() { rx.interrupt(); <-done }()
			bufs := transportBatch(ioBenchBatch, ioBenchSize, 1)
			b.SetBytes(ioBenchBatch * ioBenchSize)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				flow.wait(int64(i) * ioBenchBatch)
				if err := tx.write(bufs, dst); err != nil {
					b.Fatal(err)
				}
			}
			reportRx(b, &flow.got, int64(b.N)*ioBenchBatch, start)
		})
	}
}

// BenchmarkBindTransport sends transport messages through one Bind's Send to another Bind's
// ReceiveFunc, which maps each to the sending peer (receiver index lookup, path check).
func BenchmarkBindTransport(b *testing.B) {
	for _, v := range ioVariants() {
		b.Run(v.name, func(b *testing.B) {
			rxc, txc := benchUDPConn(b), benchUDPConn(b)
			keyA, keyB := [32]byte{1}, [32]byte{2}
			rx := newBind(v.new(b, rxc), nil, keyB, nil, discardLogger())
			tx := newBind(v.new(b, txc), nil, keyA, nil, discardLogger())
			const idx = 77
			pA, _, _ := rx.upsertPeer(keyA, nil)
			pA.path.pin(localAddrPort(txc))
			rx.rememberIndex(pA, idx)
			pB, _, _ := tx.upsertPeer(keyB, nil)
			pB.path.pin(localAddrPort(rxc))

			fns, _, err := rx.Open(0)
			if err != nil {
				b.Fatal(err)
			}
			flow := newRxFlow()
			var foreign atomic.Int64
			done := make(chan struct{})
			go func() {
				defer close(done)
				bufs, sizes := receiveBuffers(rx.BatchSize())
				eps := make([]conn.Endpoint, len(bufs))
				for {
					n, err := fns[0](bufs, sizes, eps)
					if err != nil {
						return
					}
					for i := range n {
						if eps[i] == pA.ep {
							flow.add(1)
						} else if sizes[i] > 0 {
							foreign.Add(1)
						}
					}
				}
			}()
			defer func() { rx.Close(); <-done }()
			bufs := transportBatch(ioBenchBatch, ioBenchSize, idx)
			b.SetBytes(ioBenchBatch * ioBenchSize)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				flow.wait(int64(i) * ioBenchBatch)
				if err := tx.Send(bufs, pB.ep); err != nil && !errors.Is(err, net.ErrClosed) {
					b.Fatal(err)
				}
			}
			reportRx(b, &flow.got, int64(b.N)*ioBenchBatch, start)
			if n := foreign.Load(); n > 0 {
				b.Fatalf("%d datagrams not mapped to the peer", n)
			}
		})
	}
}
