package mesh

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// netTUN is the Mesh's tunnel: a gVisor network stack behind wireguard-go's tun.Device
// interface. It follows wireguard-go's tun/netstack (MIT, WireGuard LLC), which keeps its
// stack to itself; the Mesh needs the stack to configure TCP (see newNetTUN).
type netTUN struct {
	ep       *channel.Endpoint
	stack    *stack.Stack
	events   chan tun.Event
	notify   *channel.NotificationHandle
	incoming chan *buffer.View
	mtu      int
}

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

func newNetTUN(addrs []netip.Addr, mtu int) (*netTUN, error) {
	t := &netTUN{
		ep: channel.New(1024, uint32(mtu), ""),
		stack: stack.New(stack.Options{
			NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
			TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol6, icmp.NewProtocol4},
			HandleLocal:        true,
		}),
		events:   make(chan tun.Event, 10),
		incoming: make(chan *buffer.View),
		mtu:      mtu,
	}
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
	maxRTO := tcpip.TCPMaxRTOOption(maxRTO)
	if err := t.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &maxRTO); err != nil {
		return fail("cap TCP retransmission timeout", err)
	}
	retries := tcpip.TCPMaxRetriesOption(maxRetries)
	if err := t.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &retries); err != nil {
		return fail("set TCP retransmission limit", err)
	}
	t.notify = t.ep.AddNotify(t)
	if err := t.stack.CreateNIC(nicID, t.ep); err != nil {
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
func (t *netTUN) BatchSize() int           { return 1 }

// Read hands wireguard-go the next packet the stack sends.
func (t *netTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	view, ok := <-t.incoming
	if !ok {
		return 0, os.ErrClosed
	}
	n, err := view.Read(bufs[0][offset:])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	return 1, nil
}

// Write hands the stack packets that arrived through the tunnel.
func (t *netTUN) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		pkt := b[offset:]
		if len(pkt) == 0 {
			continue
		}
		pkb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
		switch pkt[0] >> 4 {
		case 4:
			t.ep.InjectInbound(header.IPv4ProtocolNumber, pkb)
		case 6:
			t.ep.InjectInbound(header.IPv6ProtocolNumber, pkb)
		default:
			pkb.DecRef()
			return 0, syscall.EAFNOSUPPORT
		}
	}
	return len(bufs), nil
}

// WriteNotify implements channel.Notification: the stack queued a packet to send.
func (t *netTUN) WriteNotify() {
	pkt := t.ep.Read()
	if pkt == nil {
		return
	}
	view := pkt.ToView()
	pkt.DecRef()
	t.incoming <- view
}

func (t *netTUN) Close() error {
	t.stack.RemoveNIC(nicID)
	t.stack.Close()
	t.ep.RemoveNotify(t.notify)
	t.ep.Close()
	if t.events != nil {
		close(t.events)
	}
	if t.incoming != nil {
		close(t.incoming)
	}
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
