package mesh

import (
	"errors"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// TCP segmentation offload inside the process. The netstack is told its link can segment
// (stack.HostGSOSupported), so a TCP sender hands the link one packet of up to gsoMaxSize bytes
// of payload instead of forty MTU-sized ones, and does the per-segment work (headers,
// retransmission bookkeeping, checksums) once per 64 KiB. The segmenter then cuts such a packet
// into MTU-sized packets straight into wireguard-go's buffers, as a NIC would in hardware.

// gsoMaxSize is the largest packet the netstack may hand the link for segmentation. gVisor
// keeps a segment's payload under gsoMaxSize minus the largest TCP header; the IP header comes
// on top and must still fit the 16-bit length fields.
const gsoMaxSize = 0xffff - header.IPv6MinimumSize

// maxSegHeaders is room for the IP and TCP headers of one packet: an IPv4 header with options
// (60) or an IPv6 header without extension headers (40), and a TCP header with options (60).
const maxSegHeaders = 60 + 60

var errSegment = errors.New("mesh: packet cannot be segmented")

// tcpSegmenter cuts one TCP packet into packets of at most mss bytes of payload. The packet may
// be spread over several slices (a netstack packet buffer's views); the segmenter copies each
// segment's payload exactly once, into the destination buffer, and completes its checksums.
type tcpSegmenter struct {
	hdr    [maxSegHeaders]byte
	ipLen  int // IP header length
	hdrLen int // IP + TCP header length
	v6     bool
	mss    int

	src        [][]byte // the packet's slices; the payload starts hdrLen bytes in
	cur, off   int      // position of the next payload byte: src[cur][off]
	remaining  int      // payload bytes not yet segmented
	seq        uint32   // sequence number of the next segment
	id         uint16   // IPv4 ID of the next segment
	flags      header.TCPFlags
	first      bool
	srcA, dstA tcpip.Address
}

// reset prepares the segmenter for one packet: pkt is the whole IP packet, possibly in several
// slices. mss is the largest payload per segment. It fails on anything that is not a well-formed
// IPv4 or IPv6 (no extension headers) TCP packet whose lengths agree with its size.
func (s *tcpSegmenter) reset(pkt [][]byte, mss int) error {
	*s = tcpSegmenter{mss: mss, src: pkt, first: true}
	if mss <= 0 {
		return errSegment
	}
	total := 0
	for _, b := range pkt {
		total += len(b)
	}
	// Gather the headers: the first bytes of the packet, in however many slices they are.
	n := s.gather(min(total, maxSegHeaders))
	h := s.hdr[:n]
	if n < 1 {
		return errSegment
	}
	switch h[0] >> 4 {
	case 4:
		if n < header.IPv4MinimumSize {
			return errSegment
		}
		ip := header.IPv4(h)
		s.ipLen = int(ip.HeaderLength())
		if s.ipLen < header.IPv4MinimumSize || ip.Protocol() != uint8(header.TCPProtocolNumber) ||
			int(ip.TotalLength()) != total || ip.More() || ip.FragmentOffset() != 0 {
			return errSegment
		}
		s.id = ip.ID()
		s.srcA, s.dstA = ip.SourceAddress(), ip.DestinationAddress()
	case 6:
		if n < header.IPv6MinimumSize {
			return errSegment
		}
		ip := header.IPv6(h)
		s.v6 = true
		s.ipLen = header.IPv6MinimumSize
		if ip.NextHeader() != uint8(header.TCPProtocolNumber) || int(ip.PayloadLength())+header.IPv6MinimumSize != total {
			return errSegment
		}
		s.srcA, s.dstA = ip.SourceAddress(), ip.DestinationAddress()
	default:
		return errSegment
	}
	if n < s.ipLen+header.TCPMinimumSize {
		return errSegment
	}
	tcp := header.TCP(h[s.ipLen:])
	off := int(tcp.DataOffset())
	if off < header.TCPMinimumSize || s.ipLen+off > n {
		return errSegment
	}
	s.hdrLen = s.ipLen + off
	s.remaining = total - s.hdrLen
	s.seq = tcp.SequenceNumber()
	s.flags = tcp.Flags()
	// Position the payload cursor after the headers.
	skip := s.hdrLen
	for s.cur < len(pkt) && skip >= len(pkt[s.cur]) {
		skip -= len(pkt[s.cur])
		s.cur++
	}
	s.off = skip
	return nil
}

// gather copies the first n bytes of the packet into s.hdr and returns how many it copied.
func (s *tcpSegmenter) gather(n int) int {
	got := 0
	for _, b := range s.src {
		if got == n {
			break
		}
		got += copy(s.hdr[got:n], b)
	}
	return got
}

// segments reports how many packets the rest of the packet makes.
func (s *tcpSegmenter) segments() int {
	if s.remaining == 0 {
		if s.first {
			return 1 // a packet without payload (a pure ACK, a FIN) is one packet
		}
		return 0
	}
	return (s.remaining + s.mss - 1) / s.mss
}

// done reports whether every segment has been written.
func (s *tcpSegmenter) done() bool { return s.segments() == 0 }

// next writes the next segment into dst, which must hold hdrLen+mss bytes, and returns its size.
func (s *tcpSegmenter) next(dst []byte) int {
	n := min(s.remaining, s.mss)
	size := s.hdrLen + n
	copy(dst, s.hdr[:s.hdrLen])
	s.copyPayload(dst[s.hdrLen:size])
	s.remaining -= n
	last := s.remaining == 0

	flags := s.flags
	if !s.first {
		flags &^= header.TCPFlagCwr // congestion window reduced: said once, in the first segment
	}
	if !last {
		flags &^= header.TCPFlagFin | header.TCPFlagPsh // only the last segment ends the data
	}
	s.first = false

	if s.v6 {
		header.IPv6(dst).SetPayloadLength(uint16(size - header.IPv6MinimumSize))
	} else {
		ip := header.IPv4(dst)
		ip.SetTotalLength(uint16(size))
		ip.SetID(s.id)
		ip.SetChecksum(0)
		ip.SetChecksum(^ip.CalculateChecksum())
		s.id++
	}
	tcp := header.TCP(dst[s.ipLen:size])
	tcp.SetSequenceNumber(s.seq)
	tcp.SetFlags(uint8(flags))
	tcp.SetChecksum(0)
	tcpLen := size - s.ipLen
	sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, s.srcA, s.dstA, uint16(tcpLen))
	tcp.SetChecksum(^checksum.Checksum(tcp, sum))
	s.seq += uint32(n)
	return size
}

// copyPayload fills dst from the payload cursor.
func (s *tcpSegmenter) copyPayload(dst []byte) {
	for len(dst) > 0 && s.cur < len(s.src) {
		c := copy(dst, s.src[s.cur][s.off:])
		dst = dst[c:]
		s.off += c
		if s.off == len(s.src[s.cur]) {
			s.cur++
			s.off = 0
		}
	}
}
