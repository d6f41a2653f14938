// net.go holds the network pion's agents use: the standard one, with large buffers on the
// sockets pion opens for TURN.

package natt

import (
	"fmt"
	"net"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"

	"github.com/nexodus-sdk/nexodus/internal/sockbuf"
)

// turnSocketBuffer is the buffer size of the sockets pion opens for TURN allocations: a relayed
// peer's whole traffic comes through one, in bursts (see package sockbuf).
const turnSocketBuffer = 2 << 20

// bufferedNet is the network pion's agents use: the standard one, with large buffers on the UDP
// sockets pion opens itself (for TURN allocations; host and server-reflexive candidates use the
// node's shared socket through the mux).
type bufferedNet struct {
	*stdnet.Net
}

var _ transport.Net = bufferedNet{}

func newBufferedNet() (bufferedNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return bufferedNet{}, fmt.Errorf("natt: network: %w", err)
	}
	return bufferedNet{n}, nil
}

func (n bufferedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	pc, err := n.Net.ListenPacket(network, address)
	if err == nil {
		sockbuf.Grow(pc, turnSocketBuffer)
	}
	return pc, err
}

func (n bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		if pc, ok := c.(net.PacketConn); ok {
			sockbuf.Grow(pc, turnSocketBuffer)
		}
	}
	return c, err
}
