package sockbuf

import (
	"net"
	"testing"
)

func TestGrowEnlargesBuffers(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	before := rcvbuf(t, pc.(*net.UDPConn))
	Grow(pc, 4<<20)
	if after := rcvbuf(t, pc.(*net.UDPConn)); after <= before {
		t.Fatalf("receive buffer %d after Grow, %d before", after, before)
	}
	Grow(nil, 1<<20) // not a UDP socket: ignored
}
