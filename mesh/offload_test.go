package mesh

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Tests of the in-process offloads: the segmenter (tcpseg.go) and the coalescer
// (tcpcoalesce.go), on packets built here byte by byte.

var (
	src4, dst4 = tcpip.AddrFrom4([4]byte{100, 64, 0, 1}), tcpip.AddrFrom4([4]byte{100, 64, 0, 2})
	src6       = tcpip.AddrFrom16([16]byte{0: 0xfd, 15: 1})
	dst6       = tcpip.AddrFrom16([16]byte{0: 0xfd, 15: 2})
)

// tcpPacket describes a TCP packet for buildTCP.
type tcpPacket struct {
	v6           bool
	sport, dport uint16
	seq, ack     uint32
	flags        header.TCPFlags
	window       uint16
	opts         []byte // TCP options, a multiple of 4 bytes
	payload      []byte
	partial      bool // TCP checksum over the pseudo-header only, as the netstack leaves it for GSO
	id           uint16
}

func buildTCP(p tcpPacket) []byte {
	tcpLen := header.TCPMinimumSize + len(p.opts) + len(p.payload)
	ipLen := header.IPv4MinimumSize
	if p.v6 {
		ipLen = header.IPv6MinimumSize
	}
	b := make([]byte, ipLen+tcpLen)
	srcA, dstA := src4, dst4
	if p.v6 {
		srcA, dstA = src6, dst6
		header.IPv6(b).Encode(&header.IPv6Fields{
			PayloadLength: uint16(tcpLen), TransportProtocol: header.TCPProtocolNumber, HopLimit: 64,
			SrcAddr: srcA, DstAddr: dstA,
		})
	} else {
		ip := header.IPv4(b)
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(len(b)), ID: p.id, Flags: header.IPv4FlagDontFragment, TTL: 64,
			Protocol: uint8(header.TCPProtocolNumber), SrcAddr: srcA, DstAddr: dstA,
		})
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	tcp := header.TCP(b[ipLen:])
	tcp.Encode(&header.TCPFields{
		SrcPort: p.sport, DstPort: p.dport, SeqNum: p.seq, AckNum: p.ack,
		DataOffset: uint8(header.TCPMinimumSize + len(p.opts)), Flags: p.flags, WindowSize: p.window,
	})
	copy(tcp[header.TCPMinimumSize:], p.opts)
	copy(tcp[header.TCPMinimumSize+len(p.opts):], p.payload)
	sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, srcA, dstA, uint16(tcpLen))
	if p.partial {
		tcp.SetChecksum(sum)
	} else {
		tcp.SetChecksum(^checksum.Checksum(tcp, sum))
	}
	return b
}

// parsedTCP is a packet read back by checkTCP.
type parsedTCP struct {
	v6      bool
	seq     uint32
	flags   header.TCPFlags
	window  uint16
	payload []byte
	hdrLen  int
}

// checkTCP parses a packet and verifies its IP lengths and checksums (TCP's too when
// wantChecksum), as a receiving stack would.
func checkTCP(b []byte, wantChecksum bool) (parsedTCP, error) {
	var p parsedTCP
	var srcA, dstA tcpip.Address
	ipLen := 0
	switch b[0] >> 4 {
	case 4:
		ip := header.IPv4(b)
		if !ip.IsValid(len(b)) || int(ip.TotalLength()) != len(b) {
			return p, fmt.Errorf("bad IPv4 lengths")
		}
		if !ip.IsChecksumValid() {
			return p, fmt.Errorf("bad IPv4 header checksum")
		}
		ipLen, srcA, dstA = int(ip.HeaderLength()), ip.SourceAddress(), ip.DestinationAddress()
	case 6:
		ip := header.IPv6(b)
		if !ip.IsValid(len(b)) || int(ip.PayloadLength())+header.IPv6MinimumSize != len(b) {
			return p, fmt.Errorf("bad IPv6 lengths")
		}
		p.v6 = true
		ipLen, srcA, dstA = header.IPv6MinimumSize, ip.SourceAddress(), ip.DestinationAddress()
	default:
		return p, fmt.Errorf("not IP")
	}
	tcp := header.TCP(b[ipLen:])
	if wantChecksum {
		sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, srcA, dstA, uint16(len(tcp)))
		if checksum.Checksum(tcp, sum) != 0xffff {
			return p, fmt.Errorf("bad TCP checksum")
		}
	}
	p.hdrLen = ipLen + int(tcp.DataOffset())
	p.seq, p.flags, p.window, p.payload = tcp.SequenceNumber(), tcp.Flags(), tcp.WindowSize(), b[p.hdrLen:]
	return p, nil
}

func pseudoRandom(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed
	}
	return b
}

// split splits b into pieces of the given sizes (the rest in a last piece), as a packet buffer
// holds a packet in several views.
func split(b []byte, sizes ...int) [][]byte {
	var out [][]byte
	for _, s := range sizes {
		s = min(s, len(b))
		out = append(out, b[:s])
		b = b[s:]
	}
	return append(out, b)
}

// segmentAll runs the segmenter over pkt and returns the segments.
func segmentAll(t testing.TB, pkt [][]byte, mss int) ([][]byte, error) {
	var s tcpSegmenter
	if err := s.reset(pkt, mss); err != nil {
		return nil, err
	}
	var out [][]byte
	for !s.done() {
		buf := make([]byte, s.hdrLen+mss)
		n := s.next(buf)
		out = append(out, buf[:n])
		require.LessOrEqual(t, len(out), 1<<16, "segmenter does not finish")
	}
	return out, nil
}

func TestSegmenterCutsAndChecksums(t *testing.T) {
	ts := []byte{1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9} // NOP NOP timestamps
	for _, v6 := range []bool{false, true} {
		for _, size := range []int{0, 1, 1000, 1380, 1381, 4000, 60000} {
			t.Run(fmt.Sprintf("v6=%v/%d", v6, size), func(t *testing.T) {
				payload := pseudoRandom(size, 3)
				orig := buildTCP(tcpPacket{
					v6: v6, sport: 4000, dport: 80, seq: 0xfffff000, ack: 77, window: 500, opts: ts,
					flags:   header.TCPFlagAck | header.TCPFlagPsh | header.TCPFlagFin | header.TCPFlagCwr,
					payload: payload, partial: true, id: 0xfffe,
				})
				const mss = 1380
				segs, err := segmentAll(t, split(orig, 7, 33, 1000), mss)
				require.NoError(t, err)
				want := max(1, (size+mss-1)/mss)
				require.Len(t, segs, want, "segments")
				var got []byte
				seq := uint32(0xfffff000)
				for i, seg := range segs {
					p, err := checkTCP(seg, true)
					require.NoError(t, err, "segment %d", i)
					require.Equal(t, seq, p.seq, "segment %d: seq", i)
					require.LessOrEqual(t, len(p.payload), mss, "segment %d: payload", i)
					last := i == len(segs)-1
					require.Equal(t, last, p.flags&header.TCPFlagPsh != 0, "segment %d of %d: PSH", i, len(segs))
					require.Equal(t, last, p.flags&header.TCPFlagFin != 0, "segment %d of %d: FIN", i, len(segs))
					require.Equal(t, i == 0, p.flags&header.TCPFlagCwr != 0, "segment %d: CWR", i)
					if !v6 {
						require.Equal(t, uint16(0xfffe+i), ipv4ID(seg), "segment %d: IPv4 ID", i)
					}
					seq += uint32(len(p.payload))
					got = append(got, p.payload...)
				}
				require.True(t, bytes.Equal(got, payload), "payload differs after segmentation")
			})
		}
	}
}

func ipv4ID(b []byte) uint16 { return binary.BigEndian.Uint16(b[4:]) }

func TestSegmenterRefusesMalformed(t *testing.T) {
	good := buildTCP(tcpPacket{sport: 1, dport: 2, flags: header.TCPFlagAck, payload: pseudoRandom(100, 1)})
	udp := bytes.Clone(good)
	udp[9] = uint8(header.UDPProtocolNumber)
	short := bytes.Clone(good)
	binary.BigEndian.PutUint16(short[2:], uint16(len(good)+1))
	frag := bytes.Clone(good)
	frag[6] |= 0x20 // more fragments
	badOff := buildTCP(tcpPacket{sport: 1, dport: 2, flags: header.TCPFlagAck, payload: pseudoRandom(10, 1)})
	badOff[header.IPv4MinimumSize+12] = 0xf0 // a 60-byte TCP header, longer than the packet
	for name, b := range map[string][]byte{
		"udp": udp, "length": short, "fragment": frag, "data offset": badOff, "empty": nil, "v5": {0x50},
	} {
		var s tcpSegmenter
		assert.Error(t, s.reset([][]byte{b}, 1380), name)
	}
	var s tcpSegmenter
	assert.Error(t, s.reset([][]byte{good}, 0), "mss 0")
}

// coalesceAll plans and builds the netstack packets of a batch.
func coalesceAll(pkts [][]byte) [][]byte {
	var c tcpCoalescer
	var out [][]byte
	for _, it := range c.plan(pkts) {
		b := make([]byte, it.size)
		c.write(b, pkts, it)
		out = append(out, b)
	}
	return out
}

func TestCoalescerUndoesSegmentation(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		payload := pseudoRandom(50000, 9)
		orig := buildTCP(tcpPacket{
			v6: v6, sport: 1, dport: 2, seq: 100, ack: 5, window: 9, flags: header.TCPFlagAck | header.TCPFlagPsh,
			opts: []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}, payload: payload, partial: true,
		})
		segs, err := segmentAll(t, [][]byte{orig}, 1380)
		require.NoError(t, err)
		out := coalesceAll(segs)
		require.Len(t, out, 1, "v6=%v: packets", v6)
		p, err := checkTCP(out[0], false)
		require.NoError(t, err)
		require.EqualValues(t, 100, p.seq, "v6=%v: merged seq", v6)
		require.Equal(t, header.TCPFlagAck|header.TCPFlagPsh, p.flags, "v6=%v: merged flags", v6)
		require.True(t, bytes.Equal(p.payload, payload), "v6=%v: merged payload differs", v6)
	}
}

func TestCoalescerRules(t *testing.T) {
	seg := func(sport uint16, seq uint32, n int, mod ...func(*tcpPacket)) []byte {
		p := tcpPacket{sport: sport, dport: 80, seq: seq, ack: 1, window: 10, flags: header.TCPFlagAck, payload: pseudoRandom(n, byte(seq))}
		for _, m := range mod {
			m(&p)
		}
		return buildTCP(p)
	}
	psh := func(p *tcpPacket) { p.flags |= header.TCPFlagPsh }
	ack := func(a uint32) func(*tcpPacket) { return func(p *tcpPacket) { p.ack = a } }
	win := func(w uint16) func(*tcpPacket) { return func(p *tcpPacket) { p.window = w } }
	udp := buildTCP(tcpPacket{sport: 9, dport: 9})
	udp[9] = uint8(header.UDPProtocolNumber)

	cases := []struct {
		name  string
		batch [][]byte
		want  []int // packets merged into each output packet, in order
	}{
		{"run", [][]byte{seg(1, 0, 100), seg(1, 100, 100), seg(1, 200, 100, psh)}, []int{3}},
		{"push ends the run", [][]byte{seg(1, 0, 100, psh), seg(1, 100, 100)}, []int{1, 1}},
		{"short segment ends the run", [][]byte{seg(1, 0, 100), seg(1, 100, 50), seg(1, 150, 100)}, []int{2, 1}},
		{"gap", [][]byte{seg(1, 0, 100), seg(1, 300, 100)}, []int{1, 1}},
		{"retransmission", [][]byte{seg(1, 0, 100), seg(1, 0, 100)}, []int{1, 1}},
		{"other ack", [][]byte{seg(1, 0, 100), seg(1, 100, 100, ack(2))}, []int{1, 1}},
		{"window may change", [][]byte{seg(1, 0, 100), seg(1, 100, 100, win(99))}, []int{2}},
		{"larger segment", [][]byte{seg(1, 0, 100), seg(1, 100, 200)}, []int{1, 1}},
		{"interleaved flows", [][]byte{seg(1, 0, 100), seg(2, 0, 100), seg(1, 100, 100), seg(2, 100, 100)}, []int{2, 2}},
		{"pure ack", [][]byte{seg(1, 0, 0), seg(1, 0, 0)}, []int{1, 1}},
		{"not tcp between", [][]byte{seg(1, 0, 100), udp, seg(1, 100, 100)}, []int{2, 1}},
		{"syn", [][]byte{seg(1, 0, 100, func(p *tcpPacket) { p.flags = header.TCPFlagSyn | header.TCPFlagAck }), seg(1, 100, 100)}, []int{1, 1}},
		{"options differ", [][]byte{seg(1, 0, 100), seg(1, 100, 100, func(p *tcpPacket) { p.opts = []byte{1, 1, 1, 1} })}, []int{1, 1}},
	}
	for _, tc := range cases {
		var c tcpCoalescer
		var got []int
		for _, it := range c.plan(tc.batch) {
			got = append(got, it.count)
		}
		assert.Equal(t, tc.want, got, tc.name)
	}

	// The merged packet carries the last segment's window and flags.
	out := coalesceAll([][]byte{seg(1, 0, 100), seg(1, 100, 100, win(99), psh)})
	p, err := checkTCP(out[0], false)
	require.NoError(t, err)
	require.EqualValues(t, 99, p.window, "merged window")
	require.Equal(t, header.TCPFlagAck|header.TCPFlagPsh, p.flags, "merged flags")
	require.Len(t, p.payload, 200, "merged payload")
}

// streams maps each TCP flow (by source port) of a batch to its payload bytes in order, and
// counts the rest.
func streams(pkts [][]byte) (map[uint16][]byte, int) {
	out := map[uint16][]byte{}
	other := 0
	for _, b := range pkts {
		s := parseSegment(b)
		if !s.tcp {
			other++
			continue
		}
		port := binary.BigEndian.Uint16(b[s.ipLen:])
		out[port] = append(out[port], b[s.hdrLen:]...)
	}
	return out, other
}

// FuzzCoalesce feeds the coalescer batches of segments of a few flows, in fuzzer-chosen order,
// sizes, sequence numbers and flags, with some malformed packets mixed in: every flow's bytes
// must come out in order, nothing may be lost or added, and merged packets must be well formed.
func FuzzCoalesce(f *testing.F) {
	f.Add([]byte{0, 10, 0, 1, 10, 0, 0, 2, 10, 0})
	f.Add([]byte{1, 5, 1, 0, 5, 0, 1, 5, 8, 2, 7, 3})
	f.Fuzz(func(t *testing.T, spec []byte) {
		seqs := map[uint16]uint32{}
		var batch [][]byte
		for i := 0; i+2 < len(spec) && len(batch) < 128; i += 3 {
			flow, size, ctl := uint16(spec[i]%3+1), int(spec[i+1])*8, spec[i+2]
			p := tcpPacket{v6: flow == 3, sport: flow, dport: 80, ack: 1, flags: header.TCPFlagAck, seq: seqs[flow], payload: pseudoRandom(size, spec[i])}
			switch ctl % 8 {
			case 1:
				p.flags |= header.TCPFlagPsh
			case 2:
				p.seq += 7 // a gap
			case 3:
				p.ack = 2
			case 4:
				p.flags |= header.TCPFlagSyn
			case 5:
				p.opts = []byte{1, 1, 1, 1}
			}
			seqs[flow] = p.seq + uint32(size)
			b := buildTCP(p)
			if ctl%8 == 6 && len(b) > 30 {
				b = b[:len(b)-int(ctl)%20] // truncated: lengths disagree
			}
			batch = append(batch, b)
		}
		wantStreams, wantOther := streams(batch)
		var c tcpCoalescer
		items := c.plan(batch)
		total := 0
		var out [][]byte
		for _, it := range items {
			total += it.count
			b := make([]byte, it.size)
			c.write(b, batch, it)
			if it.count > 1 {
				_, err := checkTCP(b, false)
				require.NoError(t, err, "merged packet")
			}
			out = append(out, b)
		}
		require.Equal(t, len(batch), total, "packets in items")
		gotStreams, gotOther := streams(out)
		require.Equal(t, wantOther, gotOther, "packets that are not TCP")
		require.Equal(t, wantStreams, gotStreams, "the flows' bytes changed")
	})
}

// FuzzSegment feeds the segmenter arbitrary packets in arbitrary slices: it must refuse them or
// cut them into well-formed, checksummed segments that carry exactly the payload.
func FuzzSegment(f *testing.F) {
	f.Add(buildTCP(tcpPacket{sport: 1, dport: 2, flags: header.TCPFlagAck, payload: pseudoRandom(3000, 1), partial: true}), uint16(1380), uint8(5))
	f.Add(buildTCP(tcpPacket{v6: true, sport: 1, dport: 2, flags: header.TCPFlagAck | header.TCPFlagFin, payload: pseudoRandom(500, 2)}), uint16(100), uint8(60))
	f.Add([]byte{0x45, 0, 0, 20}, uint16(1), uint8(1))
	f.Fuzz(func(t *testing.T, pkt []byte, mss uint16, cut uint8) {
		if mss == 0 || len(pkt) > 70000 {
			return
		}
		segs, err := segmentAll(t, split(pkt, int(cut), int(cut)*3), int(mss))
		if err != nil {
			return
		}
		var payload []byte
		for i, seg := range segs {
			p, err := checkTCP(seg, true)
			require.NoError(t, err, "segment %d", i)
			require.LessOrEqual(t, len(p.payload), int(mss), "segment %d", i)
			payload = append(payload, p.payload...)
		}
		var s tcpSegmenter
		s.reset([][]byte{pkt}, int(mss)) // accepted above: this finds where the payload starts
		require.True(t, bytes.Equal(payload, pkt[s.hdrLen:]), "payload differs after segmentation")
	})
}
