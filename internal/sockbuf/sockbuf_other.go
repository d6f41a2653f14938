//go:build !linux

package sockbuf

import "net"

func force(*net.UDPConn, int) bool { return false }
