package mesh

import (
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// linkQueue is how many packets the netstack may have queued for wireguard-go. With segmentation
// offload most are 64 KiB TCP packets, so this bounds the queue at a few MiB; a full queue makes
// the netstack's writers wait (back-pressure), as a full TUN device would.
const linkQueue = 64

// linkEndpoint is the netstack's side of the tunnel: the stack writes outbound packets into a
// bounded queue that the tun.Device's Read drains in batches, and Write delivers inbound
// packets to the stack's dispatcher. It offers the stack segmentation offload (see tcpseg.go)
// and takes inbound checksums as verified (WireGuard authenticated the packets).
type linkEndpoint struct {
	mtu uint32
	q   chan *stack.PacketBuffer

	closeOnce sync.Once
	closed    chan struct{}

	mu         sync.RWMutex
	dispatcher stack.NetworkDispatcher
}

var (
	_ stack.LinkEndpoint = (*linkEndpoint)(nil)
	_ stack.GSOEndpoint  = (*linkEndpoint)(nil)
)

func newLinkEndpoint(mtu int) *linkEndpoint {
	return &linkEndpoint{
		mtu:    uint32(mtu),
		q:      make(chan *stack.PacketBuffer, linkQueue),
		closed: make(chan struct{}),
	}
}

// WritePackets queues the stack's outbound packets, waiting while the queue is full.
func (e *linkEndpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	for _, pkt := range pkts.AsSlice() {
		select {
		case e.q <- pkt.IncRef():
			n++
		case <-e.closed:
			pkt.DecRef()
			if n == 0 {
				return 0, &tcpip.ErrClosedForSend{}
			}
			return n, nil
		}
	}
	return n, nil
}

// deliver hands an inbound packet to the stack.
func (e *linkEndpoint) deliver(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	e.mu.RLock()
	d := e.dispatcher
	e.mu.RUnlock()
	if d != nil {
		d.DeliverNetworkPacket(proto, pkt)
	}
}

// close stops the queue: blocked writers return, and queued packets are released.
func (e *linkEndpoint) close() {
	e.closeOnce.Do(func() { close(e.closed) })
	for {
		select {
		case pkt := <-e.q:
			pkt.DecRef()
		default:
			return
		}
	}
}

func (e *linkEndpoint) MTU() uint32                      { return e.mtu }
func (e *linkEndpoint) SetMTU(mtu uint32)                {}
func (e *linkEndpoint) MaxHeaderLength() uint16          { return 0 }
func (e *linkEndpoint) LinkAddress() tcpip.LinkAddress   { return "" }
func (e *linkEndpoint) SetLinkAddress(tcpip.LinkAddress) {}
func (e *linkEndpoint) Wait()                            {}
func (e *linkEndpoint) ARPHardwareType() header.ARPHardwareType {
	return header.ARPHardwareNone
}
func (e *linkEndpoint) AddHeader(*stack.PacketBuffer)        {}
func (e *linkEndpoint) ParseHeader(*stack.PacketBuffer) bool { return true }
func (e *linkEndpoint) Close()                               {}
func (e *linkEndpoint) SetOnCloseAction(func())              {}

// Capabilities: inbound checksums need no verification. Outbound UDP and ICMP checksums are
// still computed by the stack (TCP's are completed by the segmenter), so that packets leaving
// the tunnel are correct for any peer, not only for another netstack.
func (e *linkEndpoint) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload
}

func (e *linkEndpoint) GSOMaxSize() uint32               { return gsoMaxSize }
func (e *linkEndpoint) SupportedGSO() stack.SupportedGSO { return stack.HostGSOSupported }

func (e *linkEndpoint) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	e.dispatcher = d
	e.mu.Unlock()
}

func (e *linkEndpoint) IsAttached() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.dispatcher != nil
}
