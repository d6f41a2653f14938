// example_test.go holds the package's runnable examples.

package natt_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pion/turn/v5"

	"github.com/nexodus-sdk/nexodus/natt"
)

// Discover learns a UDP socket's public address from a STUN server. natt does not read the
// socket itself: its owner (the WireGuard data plane, in the SDK) hands over what arrives, and
// the Socket routes the STUN answer to the waiting Discover call. Here the STUN server is a
// pion TURN server on 127.0.0.1 (any STUN server, the SDK's relay included, answers the same),
// so the address it reports is the socket's own.
func ExampleDiscover() {
	stunConn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm: "example",
		// Binding requests need no credentials; this server relays for nobody.
		AuthHandler: func(*turn.RequestAttributes) (string, []byte, bool) { return "", nil, false },
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            stunConn,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"},
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	// The application's socket, and the reader that feeds the natt Socket.
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		fmt.Println(err)
		return
	}
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	sock := natt.NewSocket(local, func(b []byte, to netip.AddrPort) error {
		_, err := conn.WriteToUDPAddrPort(b, to)
		return err
	})
	defer sock.Close()
	read := make(chan struct{})
	go func() {
		defer close(read)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return // closed
			}
			sock.Deliver(buf[:n], from) // not STUN (WireGuard, say): ignored
		}
	}()
	defer func() {
		conn.Close()
		<-read
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server := stunConn.LocalAddr().(*net.UDPAddr).AddrPort()
	mapped, err := natt.Discover(ctx, sock, server)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("server-reflexive address is the socket's own:", mapped == local)
	// Output: server-reflexive address is the socket's own: true
}
