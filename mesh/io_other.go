//go:build !linux

package mesh

import "net"

func newPacketIO(c *net.UDPConn) packetIO { return &stdIO{c: c} }
