package sockbuf

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGrowEnlargesBuffers(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	before := rcvbuf(t, pc.(*net.UDPConn))
	Grow(pc, 4<<20)
	assert.Greater(t, rcvbuf(t, pc.(*net.UDPConn)), before, "receive buffer after Grow")
	Grow(nil, 1<<20) // not a UDP socket: ignored
}
