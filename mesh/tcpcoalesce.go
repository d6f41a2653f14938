package mesh

import (
	"bytes"
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// TCP receive offload inside the process. wireguard-go hands the tunnel the packets of one
// socket read at a time; consecutive segments of one TCP flow among them are merged into one
// packet before the netstack sees them, so its TCP receiver processes (and acknowledges) 64 KiB
// at a time instead of one MTU. The rules are those of Linux's TCP GRO: same flow, same headers
// but for the lengths, in-order sequence numbers, equal-sized segments (only the last may be
// shorter), no flags beyond ACK (PSH and FIN only on the last), identical TCP options.
//
// The merged packet's TCP checksum is not recomputed: the netstack is told checksums were
// verified (they need not be: WireGuard authenticated every byte of every packet already).

// coalesceMaxSize bounds a merged packet, whose length must fit the IPv4 total-length and IPv6
// payload-length fields.
const coalesceMaxSize = 0xffff

// segment is what the coalescer knows of one packet of the batch.
type segment struct {
	tcp     bool // a TCP segment the coalescer may merge
	v6      bool
	ipLen   int
	hdrLen  int // IP + TCP headers
	payload int
	seq     uint32
	flags   header.TCPFlags
	next    int // the packet merged after this one; -1 for none
}

// coalesceItem is one packet for the netstack: one packet of the batch or several merged.
type coalesceItem struct {
	first, last int // packet indices; packets chain through segment.next
	count       int
	size        int  // bytes of the packet for the netstack
	open        bool // more segments of the flow may still be merged into it
}

// tcpCoalescer plans which packets of a batch merge. It keeps its slices between batches, so a
// batch costs no allocation once they have grown.
type tcpCoalescer struct {
	pkts  [][]byte // the batch's packets, for the caller
	segs  []segment
	items []coalesceItem
}

// plan parses the batch and groups its packets into items, in the order of each item's first
// packet: packets of one flow stay in order, and packets that cannot be merged are items of
// their own.
func (c *tcpCoalescer) plan(pkts [][]byte) []coalesceItem {
	c.segs = c.segs[:0]
	c.items = c.items[:0]
	for i, p := range pkts {
		s := parseSegment(p)
		c.segs = append(c.segs, s)
		if s.tcp && s.payload > 0 {
			if j := c.findOpen(pkts, i); j >= 0 {
				it := &c.items[j]
				c.segs[it.last].next = i
				it.last = i
				it.count++
				it.size += s.payload
				// A shorter segment, or one that pushes or finishes, ends the run.
				if s.payload < c.segs[it.first].payload || s.flags&(header.TCPFlagPsh|header.TCPFlagFin) != 0 {
					it.open = false
				}
				continue
			}
		}
		open := s.tcp && s.payload > 0 && s.flags&(header.TCPFlagPsh|header.TCPFlagFin) == 0
		if s.tcp {
			// A segment of a flow that does not continue its open item closes that item:
			// nothing after it may be merged before it.
			c.closeFlow(pkts, i)
		}
		c.items = append(c.items, coalesceItem{first: i, last: i, count: 1, size: len(p), open: open})
	}
	return c.items
}

// findOpen returns the open item that packet i continues, or -1.
func (c *tcpCoalescer) findOpen(pkts [][]byte, i int) int {
	s := &c.segs[i]
	for j := len(c.items) - 1; j >= 0; j-- {
		it := &c.items[j]
		if !it.open || !sameFlow(pkts[it.first], pkts[i], &c.segs[it.first], s) {
			continue
		}
		f, l := &c.segs[it.first], &c.segs[it.last]
		if s.seq != l.seq+uint32(l.payload) || s.payload > f.payload || it.size+s.payload > coalesceMaxSize ||
			!sameHeaders(pkts[it.first], pkts[i], f, s) {
			return -1
		}
		return j
	}
	return -1
}

// closeFlow closes the open item of packet i's flow, if there is one.
func (c *tcpCoalescer) closeFlow(pkts [][]byte, i int) {
	for j := len(c.items) - 1; j >= 0; j-- {
		it := &c.items[j]
		if it.open && sameFlow(pkts[it.first], pkts[i], &c.segs[it.first], &c.segs[i]) {
			it.open = false
			return
		}
	}
}

// write builds an item's packet in dst, which must be it.size bytes long: the first packet's
// headers with the lengths of the whole, and the payloads of every packet in order. The last
// packet's window and PSH/FIN flags go in the header, as the latest word of the sender.
func (c *tcpCoalescer) write(dst []byte, pkts [][]byte, it coalesceItem) {
	f := &c.segs[it.first]
	n := copy(dst, pkts[it.first])
	for i := f.next; i >= 0; i = c.segs[i].next {
		n += copy(dst[n:], pkts[i][c.segs[i].hdrLen:])
	}
	if it.count == 1 {
		return
	}
	if f.v6 {
		header.IPv6(dst).SetPayloadLength(uint16(it.size - header.IPv6MinimumSize))
	} else {
		ip := header.IPv4(dst)
		ip.SetTotalLength(uint16(it.size))
		ip.SetChecksum(0)
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	last := pkts[it.last]
	l := &c.segs[it.last]
	tcp := header.TCP(dst[f.ipLen:])
	lastTCP := header.TCP(last[l.ipLen:])
	tcp.SetFlags(uint8(f.flags | l.flags&(header.TCPFlagPsh|header.TCPFlagFin)))
	tcp.SetWindowSize(lastTCP.WindowSize())
}

// parseSegment reads what the coalescer needs of one packet. Anything but a plain IPv4 (no
// options, not fragmented) or IPv6 (no extension headers) TCP segment whose lengths agree with
// the packet comes back with tcp false, as do segments with flags other than ACK, PSH and FIN.
func parseSegment(p []byte) segment {
	s := segment{next: -1}
	if len(p) < 1 {
		return s
	}
	switch p[0] >> 4 {
	case 4:
		if len(p) < header.IPv4MinimumSize {
			return s
		}
		ip := header.IPv4(p)
		if ip.HeaderLength() != header.IPv4MinimumSize || ip.Protocol() != uint8(header.TCPProtocolNumber) ||
			int(ip.TotalLength()) != len(p) || ip.More() || ip.FragmentOffset() != 0 {
			return s
		}
		s.ipLen = header.IPv4MinimumSize
	case 6:
		if len(p) < header.IPv6MinimumSize {
			return s
		}
		ip := header.IPv6(p)
		if ip.NextHeader() != uint8(header.TCPProtocolNumber) || int(ip.PayloadLength())+header.IPv6MinimumSize != len(p) {
			return s
		}
		s.v6 = true
		s.ipLen = header.IPv6MinimumSize
	default:
		return s
	}
	if len(p) < s.ipLen+header.TCPMinimumSize {
		return s
	}
	tcp := header.TCP(p[s.ipLen:])
	off := int(tcp.DataOffset())
	if off < header.TCPMinimumSize || s.ipLen+off > len(p) {
		return s
	}
	s.flags = tcp.Flags()
	if s.flags&^(header.TCPFlagAck|header.TCPFlagPsh|header.TCPFlagFin) != 0 || s.flags&header.TCPFlagAck == 0 {
		return s
	}
	s.hdrLen = s.ipLen + off
	s.payload = len(p) - s.hdrLen
	s.seq = tcp.SequenceNumber()
	s.tcp = true
	return s
}

// sameFlow reports whether two TCP segments have the same addresses and ports.
func sameFlow(a, b []byte, sa, sb *segment) bool {
	if sa.v6 != sb.v6 {
		return false
	}
	if sa.v6 {
		if !bytes.Equal(a[8:40], b[8:40]) {
			return false
		}
	} else if !bytes.Equal(a[12:20], b[12:20]) {
		return false
	}
	return binary.BigEndian.Uint32(a[sa.ipLen:]) == binary.BigEndian.Uint32(b[sb.ipLen:])
}

// sameHeaders reports whether b may follow a in one merged packet: the same IP fields that are
// not lengths or IDs (TOS/traffic class, TTL/hop limit, DF, flow label), and the same TCP header
// but for sequence number, window, checksum and the PSH/FIN flags.
func sameHeaders(a, b []byte, sa, sb *segment) bool {
	if sa.hdrLen-sa.ipLen != sb.hdrLen-sb.ipLen {
		return false
	}
	if sa.v6 {
		// Version, traffic class, flow label; hop limit.
		if binary.BigEndian.Uint32(a) != binary.BigEndian.Uint32(b) || a[7] != b[7] {
			return false
		}
	} else if a[1] != b[1] || a[6]&0xe0 != b[6]&0xe0 || a[8] != b[8] {
		// TOS; flags (DF); TTL.
		return false
	}
	ta, tb := header.TCP(a[sa.ipLen:sa.hdrLen]), header.TCP(b[sb.ipLen:sb.hdrLen])
	const ignore = header.TCPFlagPsh | header.TCPFlagFin
	if ta.AckNumber() != tb.AckNumber() || sa.flags&^ignore != sb.flags&^ignore || ta.UrgentPointer() != tb.UrgentPointer() {
		return false
	}
	return bytes.Equal(ta[header.TCPMinimumSize:], tb[header.TCPMinimumSize:])
}
