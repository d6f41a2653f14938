// Package sockbuf enlarges UDP socket buffers. The relay and the nodes' TURN sockets receive
// bursts: a node with UDP segmentation offload sends dozens of datagrams in one system call,
// and the kernel's default receive buffer (about 200 KiB) overflows while the reader waits for
// a core; the peers' TCP takes the loss for congestion and slows down.
package sockbuf

import "net"

// Grow sets a UDP socket's receive and send buffers to size bytes, past the kernel's
// net.core.rmem_max and wmem_max where the process may (CAP_NET_ADMIN on Linux), up to them
// otherwise. It is best effort: sockets that are not UDP, and errors, are ignored.
func Grow(pc net.PacketConn, size int) {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return
	}
	if !force(uc, size) {
		_ = uc.SetReadBuffer(size)
		_ = uc.SetWriteBuffer(size)
	}
}
