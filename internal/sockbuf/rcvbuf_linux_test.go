package sockbuf

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func rcvbuf(t *testing.T, uc *net.UDPConn) int {
	t.Helper()
	rc, err := uc.SyscallConn()
	require.NoError(t, err)
	var n int
	var gerr error
	require.NoError(t, rc.Control(func(fd uintptr) { n, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }))
	require.NoError(t, gerr)
	return n
}
