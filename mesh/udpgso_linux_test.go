//go:build linux

package mesh

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/nexodus-sdk/nexodus/key"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

// udpPair is two sockets of one kind on the loopback and the address the sender sends to.
type udpPair struct {
	name   string
	listen string // address of both sockets
	dst    func(rx *net.UDPConn) netip.AddrPort
}

var udpPairs = []udpPair{
	{"udp4", "127.0.0.1:0", func(rx *net.UDPConn) netip.AddrPort { return localAddrPort(rx) }},
	// The Mesh's default: dual-stack sockets, IPv4 sent and received v4-mapped.
	{"dual-stack", "[::]:0", func(rx *net.UDPConn) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), localAddrPort(rx).Port())
	}},
	{"udp6", "[::1]:0", func(rx *net.UDPConn) netip.AddrPort { return localAddrPort(rx) }},
}

func newMmsgIOForTest(t testing.TB, c *net.UDPConn, opts ioOptions) *mmsgIO {
	t.Helper()
	m, ok := newPacketIOOptions(c, opts).(*mmsgIO)
	require.True(t, ok, "no mmsgIO on Linux")
	return m
}

// numbered returns datagrams of the given sizes, each starting with its number (sizes of at
// least 4) and filled with a pattern of it.
func numbered(sizes []int) [][]byte {
	bufs := make([][]byte, len(sizes))
	for i, n := range sizes {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(i*31 + j)
		}
		if n >= 4 {
			binary.BigEndian.PutUint32(b, uint32(i))
		}
		bufs[i] = b
	}
	return bufs
}

// gsoSizes is a batch that exercises the grouping: runs of equal sizes, shorter tails, a run
// longer than udpMaxSegments, a run larger than a UDP payload, single odd sizes and a larger
// datagram after a run.
func gsoSizes() []int {
	var s []int
	s = append(s, 1452, 1452, 1452, 700)              // run with a short tail
	s = append(s, 100)                                // alone
	s = append(s, slices.Repeat([]int{1200}, 70)...)  // more than 64 segments
	s = append(s, 1300, 1400)                         // a larger one ends the run
	s = append(s, slices.Repeat([]int{9000}, 9)...)   // more than 64 KiB in one run
	s = append(s, 148, 92, 32, 32, 32, 16)            // handshake and keepalive sizes
	s = append(s, slices.Repeat([]int{1452}, 200)...) // more than a batch of messages
	s = append(s, 60000, 60000)                       // near the UDP maximum
	s = append(s, slices.Repeat([]int{1452}, 3)...)   //
	s = append(s, 1451)                               // tail
	return s
}

// receiveAll reads want datagrams from rx with nbufs buffers per read and returns them with
// their sources. It reports whether any read split a coalesced datagram beyond the buffers
// (the stash was used).
func receiveAll(t *testing.T, rx *mmsgIO, want, nbufs int) (got [][]byte, srcs []netip.AddrPort, stashed bool) {
	t.Helper()
	bufs, sizes := receiveBuffers(nbufs)
	from := make([]netip.AddrPort, nbufs)
	rx.std.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer rx.std.c.SetReadDeadline(time.Time{})
	for len(got) < want {
		n, err := rx.read(bufs, sizes, from)
		require.NoError(t, err, "read after %d of %d datagrams", len(got), want)
		for i := range n {
			got = append(got, bytes.Clone(bufs[i][:sizes[i]]))
			srcs = append(srcs, from[i])
		}
		stashed = stashed || rx.r.stash.pending()
	}
	return got, srcs, stashed
}

func checkDatagrams(t *testing.T, got, want [][]byte, srcs []netip.AddrPort, src netip.AddrPort) {
	t.Helper()
	require.Len(t, got, len(want), "datagrams")
	for i := range want {
		require.True(t, bytes.Equal(got[i], want[i]), "datagram %d: got %d bytes (first %x), want %d bytes (first %x)",
			i, len(got[i]), got[i][:min(4, len(got[i]))], len(want[i]), want[i][:min(4, len(want[i]))])
		require.Equal(t, src, srcs[i], "source of datagram %d", i)
	}
}

// TestUDPOffload sends a batch of many datagrams through real sockets, with and without GSO on
// the sender and GRO on the receiver, and checks that the same datagrams arrive in order.
func TestUDPOffload(t *testing.T) {
	cases := []struct {
		name  string
		tx    ioOptions
		rx    ioOptions
		nbufs int
	}{
		{"plain", ioOptions{noGSO: true, noGRO: true}, ioOptions{noGSO: true, noGRO: true}, linuxBatch},
		{"gso", ioOptions{noGRO: true}, ioOptions{noGRO: true}, linuxBatch},
		{"gso+gro", ioOptions{}, ioOptions{}, linuxBatch},
		{"gso+gro/4 buffers", ioOptions{}, ioOptions{}, 4},
		{"gso+gro/1 buffer", ioOptions{}, ioOptions{}, 1},
		{"gro only", ioOptions{noGSO: true}, ioOptions{}, linuxBatch},
	}
	for _, pair := range udpPairs {
		for _, tc := range cases {
			t.Run(pair.name+"/"+tc.name, func(t *testing.T) {
				rxc, txc := listenUDP(t, pair.listen), listenUDP(t, pair.listen)
				rx, tx := newMmsgIOForTest(t, rxc, tc.rx), newMmsgIOForTest(t, txc, tc.tx)
				src := localAddrPort(txc)
				if pair.name == "dual-stack" {
					src = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), src.Port())
				}
				want := numbered(gsoSizes())
				// Send in pieces of at most 64 datagrams, as wireguard-go would, and one big
				// write; read concurrently so that the socket buffer never overflows.
				type result struct {
					got     [][]byte
					srcs    []netip.AddrPort
					stashed bool
				}
				res := make(chan result, 1)
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					g, s, st := receiveAll(t, rx, 2*len(want), tc.nbufs)
					res <- result{g, s, st}
				}()
				for i := 0; i < len(want); i += 64 {
					require.NoError(t, tx.write(want[i:min(i+64, len(want))], pair.dst(rxc)))
					time.Sleep(time.Millisecond)
				}
				require.NoError(t, tx.write(want, pair.dst(rxc)))
				wg.Wait()
				r := <-res
				checkDatagrams(t, r.got, append(slices.Clone(want), want...), r.srcs, src)
				assert.Equal(t, !tc.tx.noGSO, tx.gso.Load(), "GSO on the sender")
				if tc.nbufs < linuxBatch && rx.gro && !tx.gso.Load() {
					t.Log("kernel has GRO but no GSO; stash not exercised")
				} else if tc.nbufs < linuxBatch && rx.gro {
					assert.True(t, r.stashed, "GSO to a GRO socket with few buffers never split beyond them")
				}
			})
		}
	}
}

// TestUDPOffloadDisabledByField clears the sender's GSO flag, as a failed send does, and checks
// that sends go out datagram by datagram.
func TestUDPOffloadDisabledByField(t *testing.T) {
	rxc, txc := listenUDP(t, "127.0.0.1:0"), listenUDP(t, "127.0.0.1:0")
	rx, tx := newMmsgIOForTest(t, rxc, ioOptions{}), newMmsgIOForTest(t, txc, ioOptions{})
	tx.gso.Store(false)
	want := numbered(slices.Repeat([]int{1452}, 40))
	require.NoError(t, tx.write(want, localAddrPort(rxc)))
	got, srcs, stashed := receiveAll(t, rx, len(want), 4)
	checkDatagrams(t, got, want, srcs, localAddrPort(txc))
	assert.False(t, stashed, "datagrams sent one by one arrived coalesced beyond the buffers")
}

// TestUDPOffloadRetry makes the kernel refuse segmented sends (SO_NO_CHECK: no UDP checksums,
// which UDP GSO needs) and checks that the datagrams go out one by one instead, and that the
// socket keeps GSO (EINVAL is not the device's fault).
func TestUDPOffloadRetry(t *testing.T) {
	rxc, txc := listenUDP(t, "127.0.0.1:0"), listenUDP(t, "127.0.0.1:0")
	rx, tx := newMmsgIOForTest(t, rxc, ioOptions{}), newMmsgIOForTest(t, txc, ioOptions{})
	if !tx.gso.Load() {
		t.Skip("no UDP GSO")
	}
	rc, _ := txc.SyscallConn()
	var err error
	rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1) })
	if err != nil {
		t.Skipf("SO_NO_CHECK: %v", err)
	}
	want := numbered(slices.Repeat([]int{1000}, 50))
	require.NoError(t, tx.write(want, localAddrPort(rxc)))
	got, srcs, _ := receiveAll(t, rx, len(want), linuxBatch)
	checkDatagrams(t, got, want, srcs, localAddrPort(txc))
	assert.True(t, tx.gso.Load(), "EINVAL disabled GSO for the socket")
	assert.NotZero(t, tx.gsoRetries.Load(), "the kernel took a segmented send without UDP checksums")
}

func TestGSORetryable(t *testing.T) {
	for _, tc := range []struct {
		errno          unix.Errno
		retry, disable bool
	}{
		{unix.EIO, true, true},
		{unix.EINVAL, true, false},
		{unix.EMSGSIZE, true, false},
		{unix.ENETUNREACH, false, false},
		{unix.EPERM, false, false},
	} {
		r, d := gsoRetryable(tc.errno)
		assert.Equal(t, [2]bool{tc.retry, tc.disable}, [2]bool{r, d}, "%v: retry, disable", tc.errno)
	}
}

func TestGSOGroup(t *testing.T) {
	mk := func(sizes ...int) [][]byte { return numbered(sizes) }
	for _, tc := range []struct {
		bufs  [][]byte
		limit int
		want  int
	}{
		{mk(100, 100, 100), 64, 3},
		{mk(100, 100, 50, 100), 64, 3},
		{mk(100, 101), 64, 1},
		{mk(0, 0), 64, 1},
		{mk(100, 0, 100), 64, 1},
		{mk(100, 100, 100), 2, 2},
		{numbered(slices.Repeat([]int{10}, 100)), 1000, udpMaxSegments},
		{numbered(slices.Repeat([]int{30000}, 3)), 64, 2},
	} {
		assert.Equal(t, tc.want, gsoGroup(tc.bufs, maxUDPPayload4, tc.limit), "sizes %d limit %d", lens(tc.bufs), tc.limit)
	}
}

func lens(bufs [][]byte) []int {
	l := make([]int, len(bufs))
	for i, b := range bufs {
		l[i] = len(b)
	}
	return l
}

// groControl builds what the kernel hands a GRO reader: one UDP_GRO message with an int.
func groControl(size int) []byte {
	b := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_GRO
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(b[unix.CmsgLen(0):], uint32(size))
	return b
}

func TestGROSegmentSize(t *testing.T) {
	other := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&other[0]))
	h.Level = unix.SOL_IP
	h.Type = unix.IP_TOS
	h.SetLen(unix.CmsgLen(4))
	for _, tc := range []struct {
		name    string
		control []byte
		want    int
		err     bool
	}{
		{"empty", nil, 0, false},
		{"gro", groControl(1452), 1452, false},
		{"after another", append(slices.Clone(other), groControl(1200)...), 1200, false},
		{"other only", other, 0, false},
		{"short", groControl(1452)[:10], 0, false},
		{"truncated data", groControl(1452)[:unix.CmsgLen(4)-1], 0, true},
		{"negative", groControl(-1), 0, true},
	} {
		got, err := groSegmentSize(tc.control)
		assert.Equal(t, tc.want, got, tc.name)
		assert.Equal(t, tc.err, err != nil, "%s: error %v", tc.name, err)
	}
	// A UDP_SEGMENT message as we send it parses back (same layout, other type).
	b := make([]byte, gsoControlLen)
	putGSOControl(b, 1452)
	h = (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	assert.True(t, h.Level == unix.SOL_UDP && h.Type == unix.UDP_SEGMENT && int(h.Len) == unix.CmsgLen(2), "UDP_SEGMENT header %+v", *h)
	h.Type = unix.UDP_GRO
	got, err := groSegmentSize(b)
	assert.NoError(t, err, "16-bit size")
	assert.Equal(t, 1452, got, "16-bit size")
}

// FuzzGROSegmentSize feeds arbitrary control data to the parser: it must never panic, and a
// size it returns is a valid one.
func FuzzGROSegmentSize(f *testing.F) {
	f.Add([]byte{})
	f.Add(groControl(1452))
	f.Add(append(groControl(100), groControl(200)...))
	f.Add(groControl(1452)[:7])
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	f.Fuzz(func(t *testing.T, control []byte) {
		size, err := groSegmentSize(control)
		if err == nil {
			require.True(t, size >= 0 && size <= 1<<16-1, "size %d", size)
		}
	})
}

// splitReference cuts datagrams as the kernel coalesced them: every size bytes.
func splitReference(data [][]byte, gro []int) [][]byte {
	var out [][]byte
	for i, d := range data {
		size := gro[i]
		if size <= 0 || size >= len(d) {
			out = append(out, d)
			continue
		}
		for off := 0; off < len(d); off += size {
			out = append(out, d[off:min(off+size, len(d))])
		}
	}
	return out
}

// checkSplit runs splitCoalesced (and the stash) over received datagrams and compares with the
// reference.
func checkSplit(t *testing.T, data [][]byte, gro []int, nbufs int) {
	t.Helper()
	want := splitReference(data, gro)
	bufs, sizes := receiveBuffers(nbufs)
	srcs := make([]netip.AddrPort, nbufs)
	var stash groStash
	var got [][]byte
	var from []netip.AddrPort
	for len(data) > 0 || stash.pending() {
		var n int
		if stash.pending() {
			n = stash.drain(bufs, sizes, srcs)
		} else {
			k := min(len(data), nbufs)
			for i := range k {
				sizes[i] = copy(bufs[i], data[i])
				srcs[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(1000+len(got)+i))
			}
			n = splitCoalesced(bufs, sizes, srcs, gro[:k], k, &stash)
			data, gro = data[k:], gro[k:]
		}
		for i := range n {
			got = append(got, bytes.Clone(bufs[i][:sizes[i]]))
			from = append(from, srcs[i])
		}
	}
	require.Len(t, got, len(want), "datagrams")
	for i := range want {
		require.True(t, bytes.Equal(got[i], want[i]), "datagram %d: %d bytes, want %d", i, len(got[i]), len(want[i]))
	}
	// Pieces of one received datagram share its source, and sources never go backwards.
	for i := 1; i < len(from); i++ {
		require.GreaterOrEqual(t, from[i].Port(), from[i-1].Port(), "datagram %d from %v after %v", i, from[i], from[i-1])
	}
}

func TestSplitCoalesced(t *testing.T) {
	pattern := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + n)
		}
		return b
	}
	for _, tc := range []struct {
		name  string
		sizes []int
		gro   []int
		nbufs int
	}{
		{"none coalesced", []int{100, 200, 300}, []int{0, 0, 0}, 4},
		{"one coalesced fits", []int{4 * 1452}, []int{1452}, 4},
		{"short tail", []int{3*1452 + 10}, []int{1452}, 8},
		{"overflow", []int{45 * 1452}, []int{1452}, 32},
		{"mixed", []int{100, 10 * 1000, 50, 3*500 + 1, 7}, []int{0, 1000, 0, 500, 0}, 8},
		{"mixed overflow", []int{100, 30 * 1000, 50, 20*500 + 1, 7}, []int{0, 1000, 0, 500, 0}, 8},
		{"one buffer", []int{5 * 100, 3 * 100}, []int{100, 100}, 1},
		{"gro size not smaller", []int{100, 100}, []int{100, 200}, 2},
		{"empty datagrams", []int{0, 0, 300}, []int{0, 0, 100}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := make([][]byte, len(tc.sizes))
			for i, n := range tc.sizes {
				data[i] = pattern(n)
			}
			checkSplit(t, data, slices.Clone(tc.gro), tc.nbufs)
		})
	}
}

// FuzzSplitCoalesced checks the in-place split against the reference for arbitrary datagram
// sizes, GRO sizes and buffer counts.
func FuzzSplitCoalesced(f *testing.F) {
	f.Add([]byte{10, 3, 5, 0, 200, 50}, uint8(4))
	f.Add([]byte{255, 1, 0, 0, 40, 7}, uint8(1))
	f.Fuzz(func(t *testing.T, spec []byte, nbufs uint8) {
		// Pairs of bytes: datagram size (x 8) and GRO size (x 4, 0 = not coalesced).
		if nbufs == 0 || len(spec) > 64 {
			return
		}
		var data [][]byte
		var gro []int
		for i := 0; i+1 < len(spec); i += 2 {
			n, g := int(spec[i])*8, int(spec[i+1])*4
			d := make([]byte, n)
			for j := range d {
				d[j] = byte(i + j*3)
			}
			data = append(data, d)
			gro = append(gro, g)
		}
		checkSplit(t, data, gro, int(nbufs%40)+1)
	})
}

// TestBindGROClassifiesEachDatagram sends, through GSO, a run of equal-sized datagrams that
// mixes WireGuard transport messages with a non-WireGuard one of the same size; the receiving
// Bind must hand each transport message to wireguard-go and the other one to OnPacket, whether
// the kernel coalesced them or not.
func TestBindGROClassifiesEachDatagram(t *testing.T) {
	for _, pair := range udpPairs {
		t.Run(pair.name, func(t *testing.T) {
			rxc, txc := listenUDP(t, pair.listen), listenUDP(t, pair.listen)
			var mu sync.Mutex
			var others [][]byte
			onPacket := func(b []byte, _ netip.AddrPort) {
				mu.Lock()
				others = append(others, bytes.Clone(b))
				mu.Unlock()
			}
			keyA, keyB := key.Key{1}, key.Key{2}
			rxIO := newMmsgIOForTest(t, rxc, ioOptions{})
			rx := newBind(rxIO, nil, keyB, onPacket, discardLogger())
			tx := newMmsgIOForTest(t, txc, ioOptions{})
			src := localAddrPort(txc)
			if pair.name == "dual-stack" {
				src = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), src.Port())
			}
			const idx = 99
			pA, _, _ := rx.upsertPeer(keyA, nil)
			pA.path.pin(src)
			rx.peers.rememberIndex(pA, idx)

			bufs := transportBatch(20, ioBenchSize, idx)
			stun := make([]byte, ioBenchSize) // a STUN-looking datagram: type 0x0001, length
			stun[1] = 1
			binary.BigEndian.PutUint16(stun[2:], ioBenchSize-20)
			bufs[7] = stun
			fns, _, err := rx.Open(0)
			require.NoError(t, err)
			defer rx.Close()
			require.NoError(t, tx.write(bufs, pair.dst(rxc)))
			rbufs, sizes := receiveBuffers(4) // fewer than the datagrams: splits beyond them
			eps := make([]conn.Endpoint, len(rbufs))
			var counters []uint64
			stashed := false
			deadline := time.Now().Add(5 * time.Second)
			for len(counters) < 19 && time.Now().Before(deadline) {
				n, err := fns[0](rbufs, sizes, eps)
				require.NoError(t, err)
				stashed = stashed || rxIO.r.stash.pending()
				for i := range n {
					if eps[i] == nil {
						continue
					}
					require.True(t, eps[i] == pA.ep && classify(rbufs[i][:sizes[i]]) == kindTransport,
						"datagram %d: endpoint %v kind %v", i, eps[i], classify(rbufs[i][:sizes[i]]))
					counters = append(counters, binary.LittleEndian.Uint64(rbufs[i][8:16]))
				}
			}
			wantCounters := []uint64{0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}
			require.Equal(t, wantCounters, counters, "transport messages")
			if rxIO.gro && tx.gso.Load() {
				assert.True(t, stashed, "the datagrams did not arrive coalesced")
			}
			mu.Lock()
			defer mu.Unlock()
			require.Equal(t, [][]byte{stun}, others, "OnPacket: the STUN datagram")
		})
	}
}

func TestProbeOffloadReport(t *testing.T) {
	c := listenUDP(t, "[::]:0")
	m := newMmsgIOForTest(t, c, ioOptions{})
	t.Logf("UDP GSO %v, UDP GRO %v", m.gso.Load(), m.gro)
	off := newMmsgIOForTest(t, listenUDP(t, "[::]:0"), ioOptions{noGSO: true, noGRO: true})
	assert.False(t, off.gso.Load(), "GSO on although disabled")
	assert.False(t, off.gro, "GRO on although disabled")
}
