// memnet_test.go holds an in-memory UDP network of Sockets and STUN servers, for the tests that
// run in a synctest bubble (virtual time): real sockets block outside the bubble.

package natt

import (
	"net/netip"
	"sync"
	"testing"
)

// memNet delivers what a Socket on it writes, at once, to the Socket or the STUN server at the
// destination address; anything else is lost.
type memNet struct {
	mu    sync.Mutex
	socks map[netip.AddrPort]*Socket
	stun  map[netip.AddrPort]*stunResponder
	down  map[netip.AddrPort]bool // nothing gets to or from these addresses
}

func newMemNet() *memNet {
	return &memNet{
		socks: map[netip.AddrPort]*Socket{},
		stun:  map[netip.AddrPort]*stunResponder{},
		down:  map[netip.AddrPort]bool{},
	}
}

// socket returns a Socket at addr, closed when the test ends.
func (n *memNet) socket(t testing.TB, addr string) *Socket {
	ap := netip.MustParseAddrPort(addr)
	s := NewSocket(ap, func(b []byte, to netip.AddrPort) error {
		n.deliver(b, ap, to)
		return nil
	})
	n.mu.Lock()
	n.socks[ap] = s
	n.mu.Unlock()
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// stunServer starts a STUN server at addr.
func (n *memNet) stunServer(addr string) (*stunResponder, netip.AddrPort) {
	ap := netip.MustParseAddrPort(addr)
	r := &stunResponder{}
	n.mu.Lock()
	n.stun[ap] = r
	n.mu.Unlock()
	return r, ap
}

// setDown cuts (or restores) everything to and from addr.
func (n *memNet) setDown(addr netip.AddrPort, down bool) {
	n.mu.Lock()
	n.down[addr] = down
	n.mu.Unlock()
}

func (n *memNet) deliver(b []byte, from, to netip.AddrPort) {
	n.mu.Lock()
	lost := n.down[from] || n.down[to]
	srv, sock, back := n.stun[to], n.socks[to], n.socks[from]
	n.mu.Unlock()
	switch {
	case lost:
	case srv != nil:
		if resp, ok := srv.answer(b, from); ok && back != nil {
			back.Deliver(resp, to)
		}
	case sock != nil:
		sock.Deliver(b, from)
	}
}
