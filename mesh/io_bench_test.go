package mesh

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/key"
	"github.com/stretchr/testify/require"
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

// receiveLoop calls read with n receive buffers, on a goroutine of its own, until it fails; the
// function it returns waits for that.
func receiveLoop(n int, read func(bufs [][]byte, sizes []int) error) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		bufs, sizes := receiveBuffers(n)
		for read(bufs, sizes) == nil {
		}
	}()
	return func() { <-done }
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

// settle waits until want datagrams were counted or none arrived for quiet, and returns the
// count and when the last progress was seen.
func (f *rxFlow) settle(want int64, quiet time.Duration) (n int64, last time.Time) {
	last = time.Now()
	for f.got.Load() < want {
		f.timer.Reset(quiet)
		select {
		case <-f.progress:
			f.timer.Stop()
			last = time.Now()
		case <-f.timer.C:
			return f.got.Load(), last
		}
	}
	return f.got.Load(), time.Now()
}

// sendBatches runs a benchmark's b.N operations, each one batch of ioBenchBatch datagrams handed
// to send, with flow control, and reports what arrived: the receive rate over the whole run (a
// final quiet spell of 200 ms not counted) and the loss.
func sendBatches(b *testing.B, flow *rxFlow, send func() error) {
	b.SetBytes(ioBenchBatch * ioBenchSize)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		flow.wait(int64(i) * ioBenchBatch)
		if err := send(); err != nil {
			b.Fatal(err)
		}
	}
	want := int64(b.N) * ioBenchBatch
	n, last := flow.settle(want, 200*time.Millisecond)
	b.StopTimer()
	b.ReportMetric(float64(n)/last.Sub(start).Seconds(), "rx-pkt/s")
	b.ReportMetric(100*float64(want-n)/float64(want), "loss-%")
}

func BenchmarkPacketIO(b *testing.B) {
	for _, v := range ioVariants() {
		b.Run(v.name, func(b *testing.B) {
			rxc, txc := listenUDP(b, "127.0.0.1:0"), listenUDP(b, "127.0.0.1:0")
			rx, tx := v.new(b, rxc), v.new(b, txc)
			dst := rx.localAddr()
			flow := newRxFlow()
			srcs := make([]netip.AddrPort, rx.batchSize())
			received := receiveLoop(rx.batchSize(), func(bufs [][]byte, sizes []int) error {
				n, err := rx.read(bufs, sizes, srcs)
				flow.add(n)
				return err
			})
			defer func() { rx.interrupt(); received() }()
			bufs := transportBatch(ioBenchBatch, ioBenchSize, 1)
			sendBatches(b, flow, func() error { return tx.write(bufs, dst) })
		})
	}
}

// BenchmarkBindTransport sends transport messages through one Bind's Send to another Bind's
// ReceiveFunc, which maps each to the sending peer (receiver index lookup, path check).
func BenchmarkBindTransport(b *testing.B) {
	for _, v := range ioVariants() {
		b.Run(v.name, func(b *testing.B) {
			rxc, txc := listenUDP(b, "127.0.0.1:0"), listenUDP(b, "127.0.0.1:0")
			keyA, keyB := key.Key{1}, key.Key{2}
			rx := newBind(v.new(b, rxc), nil, keyB, nil, discardLogger())
			tx := newBind(v.new(b, txc), nil, keyA, nil, discardLogger())
			const idx = 77
			pA, _, _ := rx.upsertPeer(keyA, nil)
			pA.path.pin(localAddrPort(txc))
			rx.peers.rememberIndex(pA, idx)
			pB, _, _ := tx.upsertPeer(keyB, nil)
			pB.path.pin(localAddrPort(rxc))

			fns, _, err := rx.Open(0)
			require.NoError(b, err)
			flow := newRxFlow()
			var foreign atomic.Int64
			eps := make([]conn.Endpoint, rx.BatchSize())
			received := receiveLoop(rx.BatchSize(), func(bufs [][]byte, sizes []int) error {
				n, err := fns[0](bufs, sizes, eps)
				for i := range n {
					if eps[i] == pA.ep {
						flow.add(1)
					} else if sizes[i] > 0 {
						foreign.Add(1)
					}
				}
				return err
			})
			defer func() { rx.Close(); received() }()
			bufs := transportBatch(ioBenchBatch, ioBenchSize, idx)
			sendBatches(b, flow, func() error {
				if err := tx.Send(bufs, pB.ep); !errors.Is(err, net.ErrClosed) {
					return err
				}
				return nil
			})
			require.Zero(b, foreign.Load(), "datagrams not mapped to the peer")
		})
	}
}
