package mesh

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// netTUN is the Mesh's tunnel: a gVisor network stack behind wireguard-go's tun.Device
// interface. wireguard-go's own tun/netstack keeps its stack to itself and moves one packet per
// call; this one configures the stack (see newNetTUN) and moves batches, with segmentation
// offload on the way out (tcpseg.go) and receive coalescing on the way in (tcpcoalesce.go).
type netTUN struct {
	link   *linkEndpoint
	stack  *stack.Stack
	events chan tun.Event
	mtu    int

	// Read has one caller at a time (wireguard-go's TUN reader): the packet it is segmenting
	// carries over from one Read to the next when the batch is full.
	seg    tcpSegmenter
	segPkt *stack.PacketBuffer
	views  [][]byte // the slices of the packet being read, reused

	coalescers sync.Pool // *tcpCoalescer; Write is called by every peer's receive routine

	tx, rx *queueGate // shared with the Bind (see queueGate)

	closed atomic.Bool
}

// tunBatch is how many packets one Read may return: wireguard-go sizes its TUN reader's buffers
// by it (64 KiB each). 64 holds a whole 64 KiB TCP packet cut into MTU-sized segments.
const tunBatch = 64

var _ tun.Device = (*netTUN)(nil)

const nicID = 1

// newNetTUN creates the stack with the given addresses, one NIC and a default route per address
// family.
//
// TCP runs without RACK loss detection and its tail loss probes. gVisor's tail loss probe
// re-arms the retransmission timer from scratch on every transmit attempt, including attempts
// that send nothing because the congestion window is full. An application that keeps writing
// (a line every 100 ms, say) while the path is down therefore pushes the retransmission timeout
// back forever: once the path works again, not a single segment is retransmitted, and the
// connection hangs although WireGuard is up. Without RACK, the timer runs from the oldest
// unacknowledged segment as RFC 6298 has it and retransmits with the usual backoff; loss
// recovery falls back to SACK (RFC 6675) and NewReno.
// maxRTO caps TCP's retransmission timeout (gVisor's default is 120 s). The timeout doubles
// with every unanswered retransmission, so after a path outage of 15 s (a NAT mapping change
// until NAT traversal finds a new pair) the next retransmission, and with it the first byte on
// the new path, would come up to another 16 s later. With the cap, a stream resumes at most
// maxRTO after its path does, for a cost of one retransmitted segment per maxRTO while a path
// is down. gVisor aborts a connection when one segment was retransmitted maxRetries times;
// maxRetries is raised with the cap so that a connection still survives an outage of about
// 15 minutes, as with the default cap and 15 retries.
const (
	maxRTO     = 3 * time.Second
	maxRetries = 300
)

// TCP buffer ceilings. gVisor counts each segment's overhead against the receive buffer (the
// window it advertises is about half the buffer) and its default ceiling is 4 MiB, which caps
// a connection at about 2 MiB per round trip — 0.68× kernel TCP on a 50 ms path. The buffers
// auto-tune from their default up to these ceilings; a connection whose reader keeps up never
// fills them, so memory grows only where the bandwidth-delay product needs it. On the WAN
// benchmark's 50 ms path (internal/wanlab) 8 MiB (tsnet's choice) reached 294–405 Mbit/s and
// 16 MiB 640–820, beside kernel TCP's 470.
const (
	tcpReceiveBufferMax = 16 << 20
	tcpSendBufferMax    = 16 << 20
)

// minRTO is the floor of TCP's retransmission timeout (gVisor's default is 200 ms, Linux's
// too). Without tail loss probes (see above) a lost last segment — the request of a
// request/response exchange — waits for the timeout; with the floor at 200 ms a 1 %-loss
// 50 ms path saw a p99 round trip of 250 ms. Above the floor the timeout is srtt + 4·rttvar
// (RFC 6298), which keeps spurious retransmissions away on paths with jitter; gVisor's
// receivers do not delay ACKs, which is what Linux's 200 ms floor allows for (a plain
// WireGuard peer with a kernel stack does, and its delays enter srtt and rttvar).
const minRTO = 50 * time.Millisecond

func newNetTUN(addrs []netip.Addr, mtu int, tx, rx *queueGate) (*netTUN, error) {
	t := &netTUN{
		link: newLinkEndpoint(mtu),
		stack: stack.New(stack.Options{
			NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
			TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol6, icmp.NewProtocol4},
			HandleLocal:        true,
		}),
		events: make(chan tun.Event, 10),
		mtu:    mtu,
		tx:     tx,
		rx:     rx,
	}
	t.coalescers.New = func() any { return new(tcpCoalescer) }
	fail := func(what string, err tcpip.Error) (*netTUN, error) {
		t.stack.Close()
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	sack := tcpip.TCPSACKEnabled(true)
	if err := t.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		return fail("enable TCP SACK", err)
	}
	recovery := tcpip.TCPRecovery(0)
	if err := t.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &recovery); err != nil {
		return fail("disable TCP RACK", err)
	}
	rcvBuf := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultReceiveBufferSize, Max: tcpReceiveBufferMax}
	if err := t.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &rcvBuf); err != nil {
		return fail("set TCP receive buffer range", err)
	}
	sndBuf := tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultSendBufferSize, Max: tcpSendBufferMax}
	if err := t.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &sndBuf); err != nil {
		return fail("set TCP send buffer range", err)
	}
	minRTO := tcpip.TCPMinRTOOption(minRTO)
	if err := t.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &minRTO); err != nil {
		return fail("set TCP minimum retransmission timeout", err)
	}
	maxRTO := tcpip.TCPMaxRTOOption(maxRTO)
	if err := t.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &maxRTO); err != nil {
		return fail("cap TCP retransmission timeout", err)
	}
	retries := tcpip.TCPMaxRetriesOption(maxRetries)
	if err := t.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &retries); err != nil {
		return fail("set TCP retransmission limit", err)
	}
	if err := t.stack.CreateNIC(nicID, t.link); err != nil {
		return fail("create NIC", err)
	}
	var has4, has6 bool
	for _, a := range addrs {
		proto := ipv4.ProtocolNumber
		if a.Is6() {
			proto = ipv6.ProtocolNumber
		}
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix()}
		if err := t.stack.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
			return fail(fmt.Sprintf("add address %v", a), err)
		}
		has4, has6 = has4 || a.Is4(), has6 || a.Is6()
	}
	if has4 {
		t.stack.AddRoute(tcpip.Route{Destination: header.IPv4EmptySubnet, NIC: nicID})
	}
	if has6 {
		t.stack.AddRoute(tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: nicID})
	}
	t.events <- tun.EventUp
	return t, nil
}

func (t *netTUN) Name() (string, error)    { return "go", nil }
func (t *netTUN) File() *os.File           { return nil }
func (t *netTUN) Events() <-chan tun.Event { return t.events }
func (t *netTUN) MTU() (int, error)        { return t.mtu, nil }
func (t *netTUN) BatchSize() int           { return tunBatch }

// Read hands wireguard-go the packets the stack sends: it waits for one, then takes whatever
// else is queued, as long as the batch has room. A TCP packet built for segmentation offload
// becomes as many MTU-sized packets as it takes.
func (t *netTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := 0
	defer func() { t.tx.enter(n) }()
	for n < len(bufs) {
		if t.segPkt != nil {
			for n < len(bufs) && !t.seg.done() {
				sizes[n] = t.seg.next(bufs[n][offset:])
				n++
			}
			if !t.seg.done() {
				return n, nil
			}
			t.segPkt.DecRef()
			t.segPkt = nil
			continue
		}
		var pkt *stack.PacketBuffer
		if n == 0 {
			t.tx.wait(t.link.closed)
			select {
			case pkt = <-t.link.q:
			case <-t.link.closed:
				return 0, os.ErrClosed
			}
		} else {
			select {
			case pkt = <-t.link.q:
			default:
				return n, nil
			}
		}
		if t.segment(pkt, len(bufs[n])-offset) {
			continue
		}
		if size := pkt.Size(); size <= len(bufs[n])-offset {
			t.views = packetSlices(t.views[:0], pkt)
			sizes[n] = copySlices(bufs[n][offset:], t.views)
			n++
		}
		pkt.DecRef()
	}
	return n, nil
}

// segment starts segmenting pkt if the stack left its segmentation or TCP checksum to the link.
// It reports false for packets to be sent as they are. A packet it cannot segment is dropped
// (and reported true): the stack retransmits what was in it.
func (t *netTUN) segment(pkt *stack.PacketBuffer, room int) bool {
	gso := pkt.GSOOptions
	if gso.Type != stack.GSOTCPv4 && gso.Type != stack.GSOTCPv6 {
		return false
	}
	mss := int(gso.MSS)
	if mss == 0 || pkt.Size() <= t.mtu {
		mss = t.mtu // one segment, whose checksum the segmenter completes
	}
	t.views = packetSlices(t.views[:0], pkt)
	if err := t.seg.reset(t.views, mss); err != nil || t.seg.hdrLen+mss > room {
		pkt.DecRef()
		return true
	}
	t.segPkt = pkt
	return true
}

// packetSlices appends the slices that make up pkt, headers first, to dst: what pkt.AsSlices
// returns, without allocating.
func packetSlices(dst [][]byte, pkt *stack.PacketBuffer) [][]byte {
	vl, skip := pkt.AsViewList()
	for v := vl.Front(); v != nil; v = v.Next() {
		b := v.AsSlice()
		if skip >= len(b) {
			skip -= len(b)
			continue
		}
		dst = append(dst, b[skip:])
		skip = 0
	}
	return dst
}

func copySlices(dst []byte, src [][]byte) int {
	n := 0
	for _, b := range src {
		n += copy(dst[n:], b)
	}
	return n
}

// Write hands the stack packets that arrived through the tunnel, consecutive segments of a TCP
// flow merged into one packet.
func (t *netTUN) Write(bufs [][]byte, offset int) (int, error) {
	c := t.coalescers.Get().(*tcpCoalescer)
	defer t.coalescers.Put(c)
	pkts := c.pkts[:0]
	for _, b := range bufs {
		if len(b) > offset {
			pkts = append(pkts, b[offset:])
		}
	}
	c.pkts = pkts
	for _, it := range c.plan(pkts) {
		first := pkts[it.first]
		var proto tcpip.NetworkProtocolNumber
		switch first[0] >> 4 {
		case 4:
			proto = header.IPv4ProtocolNumber
		case 6:
			proto = header.IPv6ProtocolNumber
		default:
			continue // wireguard-go lets only IPv4 and IPv6 through
		}
		var payload buffer.Buffer
		if it.count == 1 {
			payload = buffer.MakeWithData(first)
		} else {
			v := buffer.NewViewSize(it.size)
			c.write(v.AsSlice(), pkts, it)
			payload = buffer.MakeWithView(v)
		}
		// The NIC marks the packet checksum-validated: the link declares receive offload.
		pkb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: payload})
		t.link.deliver(proto, pkb)
		pkb.DecRef()
	}
	clear(pkts) // do not keep wireguard-go's buffers reachable from the pool
	t.rx.leave(len(bufs))
	return len(bufs), nil
}

// Close implements tun.Device: it closes the stack and with it every connection and listener on
// it. A second call returns an error wrapping net.ErrClosed.
func (t *netTUN) Close() error {
	if t.closed.Swap(true) {
		return fmt.Errorf("mesh: close tunnel: %w", net.ErrClosed)
	}
	t.link.close()
	t.stack.RemoveNIC(nicID)
	t.stack.Close()
	t.link.close() // what the stack wrote while closing
	close(t.events)
	return nil
}

func fullAddr(ap netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber) {
	proto := ipv6.ProtocolNumber
	if ap.Addr().Is4() {
		proto = ipv4.ProtocolNumber
	}
	return tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(ap.Addr().AsSlice()), Port: ap.Port()}, proto
}

func (t *netTUN) DialContextTCPAddrPort(ctx context.Context, addr netip.AddrPort) (*gonet.TCPConn, error) {
	fa, pn := fullAddr(addr)
	return gonet.DialContextTCP(ctx, t.stack, fa, pn)
}

func (t *netTUN) ListenTCPAddrPort(addr netip.AddrPort) (*gonet.TCPListener, error) {
	fa, pn := fullAddr(addr)
	return gonet.ListenTCP(t.stack, fa, pn)
}

func (t *netTUN) DialUDPAddrPort(laddr, raddr netip.AddrPort) (*gonet.UDPConn, error) {
	var lfa, rfa *tcpip.FullAddress
	var pn tcpip.NetworkProtocolNumber
	if laddr.IsValid() || laddr.Port() > 0 {
		var a tcpip.FullAddress
		a, pn = fullAddr(laddr)
		lfa = &a
	}
	if raddr.IsValid() || raddr.Port() > 0 {
		var a tcpip.FullAddress
		a, pn = fullAddr(raddr)
		rfa = &a
	}
	return gonet.DialUDP(t.stack, lfa, rfa, pn)
}

func (t *netTUN) ListenUDPAddrPort(laddr netip.AddrPort) (*gonet.UDPConn, error) {
	return t.DialUDPAddrPort(laddr, netip.AddrPort{})
}
