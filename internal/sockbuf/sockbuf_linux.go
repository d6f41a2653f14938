package sockbuf

import (
	"net"

	"golang.org/x/sys/unix"
)

// force sets the buffers past rmem_max/wmem_max, which needs CAP_NET_ADMIN; it reports whether
// both calls succeeded.
func force(uc *net.UDPConn, size int) bool {
	rc, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	_ = rc.Control(func(fd uintptr) {
		ok = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) == nil &&
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size) == nil
	})
	return ok
}
