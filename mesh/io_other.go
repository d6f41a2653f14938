//go:build !linux

package mesh

import "net"

func newPacketIO(c *net.UDPConn) packetIO { return newPacketIOOptions(c, ioOptions{}) }

// newPacketIOOptions returns one-datagram I/O: batching and offloads are Linux-only.
func newPacketIOOptions(c *net.UDPConn, _ ioOptions) packetIO { return &stdIO{c: c} }
