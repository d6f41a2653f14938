// socket_test.go tests the shared Socket: what it keeps, its bounded queue, Close and read
// deadlines, the view the ICE mux reads, and arbitrary datagrams (fuzzed).

package natt

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func stunRequest(t testing.TB) []byte {
	t.Helper()
	m, err := stun.Build(stun.TransactionID, stun.BindingRequest)
	require.NoError(t, err)
	return m.Raw
}

// discardSocket is a Socket at 127.0.0.1:1000 whose writes go nowhere.
func discardSocket(t testing.TB) *Socket {
	s := NewSocket(netip.MustParseAddrPort("127.0.0.1:1000"), func([]byte, netip.AddrPort) error { return nil })
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSocketDeliverRead(t *testing.T) {
	var mu sync.Mutex
	var wrote []netip.AddrPort
	s := NewSocket(netip.MustParseAddrPort("127.0.0.1:1000"), func(b []byte, to netip.AddrPort) error {
		mu.Lock()
		wrote = append(wrote, to)
		mu.Unlock()
		return nil
	})
	defer s.Close()

	from := netip.MustParseAddrPort("[::ffff:192.0.2.1]:3478")
	unmapped := netip.MustParseAddrPort("192.0.2.1:3478")
	req := stunRequest(t)
	require.True(t, s.Deliver(req, from), "STUN message not accepted")
	require.False(t, s.Deliver([]byte{4, 0, 0, 0, 1, 2, 3}, from), "non-STUN datagram accepted")
	buf := make([]byte, 1500)
	n, addr, err := s.ReadFrom(buf)
	require.NoError(t, err)
	assert.Equal(t, req, buf[:n])
	assert.Equal(t, unmapped, addr.(*net.UDPAddr).AddrPort(), "from is the unmapped address")
	_, err = s.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(from))
	require.NoError(t, err)
	mu.Lock()
	assert.Equal(t, []netip.AddrPort{unmapped}, wrote)
	mu.Unlock()
	assert.Equal(t, SocketStats{Delivered: 1, Ignored: 1, Sent: 1}, s.Stats())
	assert.Equal(t, "127.0.0.1:1000", s.LocalAddr().String())
}

func TestSocketQueueBounded(t *testing.T) {
	s := discardSocket(t)
	from := netip.MustParseAddrPort("192.0.2.1:3478")
	req := stunRequest(t)
	for i := 0; i < DefaultSocketQueue+10; i++ {
		s.Deliver(req, from)
	}
	assert.Equal(t, SocketStats{Delivered: DefaultSocketQueue, Dropped: 10}, s.Stats())
	buf := make([]byte, 1500)
	for i := 0; i < DefaultSocketQueue; i++ {
		_, _, err := s.ReadFromAddrPort(buf)
		require.NoError(t, err)
	}
}

func TestSocketCloseUnblocksReaders(t *testing.T) {
	s := discardSocket(t)
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			_, _, err := s.ReadFrom(make([]byte, 100))
			errs <- err
		}()
	}
	require.NoError(t, s.Close())
	for i := 0; i < 2; i++ {
		require.ErrorIs(t, <-errs, net.ErrClosed, "read after close")
	}
	_, err := s.WriteToAddrPort([]byte("x"), netip.MustParseAddrPort("192.0.2.1:1"))
	require.ErrorIs(t, err, net.ErrClosed, "write after close")
	require.False(t, s.Deliver(stunRequest(t), netip.MustParseAddrPort("192.0.2.1:1")), "Deliver after close accepted")
}

func TestSocketReadDeadline(t *testing.T) {
	s := discardSocket(t)
	require.NoError(t, s.SetReadDeadline(time.Now().Add(-time.Second)))
	_, _, err := s.ReadFrom(make([]byte, 10))
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	// A deadline set while a reader waits wakes it.
	require.NoError(t, s.SetReadDeadline(time.Time{}))
	errs := make(chan error, 1)
	go func() {
		_, _, err := s.ReadFrom(make([]byte, 10))
		errs <- err
	}()
	_ = s.SetReadDeadline(time.Now())
	require.ErrorIs(t, <-errs, os.ErrDeadlineExceeded)
}

func TestSockViewCloseKeepsSocket(t *testing.T) {
	s := discardSocket(t)
	v := newSockView(s)
	errs := make(chan error, 1)
	go func() {
		_, _, err := v.ReadFrom(make([]byte, 10))
		errs <- err
	}()
	require.NoError(t, v.Close())
	require.ErrorIs(t, <-errs, net.ErrClosed, "view read after close")
	_, err := v.WriteToAddrPort([]byte("x"), netip.MustParseAddrPort("192.0.2.1:1"))
	require.ErrorIs(t, err, net.ErrClosed, "view write after close")
	_, err = s.WriteToAddrPort([]byte("x"), netip.MustParseAddrPort("192.0.2.1:1"))
	require.NoError(t, err, "socket write after view close")
}

// FuzzSocketDeliver feeds arbitrary datagrams to a Socket with a Discover transaction pending:
// nothing may panic, and whatever is queued reads back unchanged.
func FuzzSocketDeliver(f *testing.F) {
	req, _ := stun.Build(stun.TransactionID, stun.BindingRequest)
	resp, _ := bindingResponse(req.Raw, netip.MustParseAddrPort("192.0.2.1:5"))
	f.Add(req.Raw)
	f.Add(resp)
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := discardSocket(t)
		ch := make(chan datagram, 1)
		defer s.register(req.TransactionID, ch)()
		from := netip.MustParseAddrPort("192.0.2.9:3478")
		if !s.Deliver(b, from) {
			return
		}
		select {
		case d := <-ch:
			_, _ = parseBindingResponse(d.b, req.TransactionID)
			return
		default:
		}
		require.NoError(t, s.SetReadDeadline(time.Now().Add(time.Second)))
		buf := make([]byte, 65535)
		n, got, err := s.ReadFromAddrPort(buf)
		require.NoError(t, err)
		require.Equal(t, from, got)
		require.Equal(t, b, buf[:n])
	})
}
