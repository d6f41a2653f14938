// stun_test.go tests the STUN client: Discover over real sockets, its RFC 5389 retransmission
// schedule in virtual time, forged responses, and the response parser (fuzzed).

package natt

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/stun/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDiscoverReturnsSocketAddress(t *testing.T) {
	srv := newSTUNServer(t)
	n := newTestNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := Discover(ctx, n.sock, srv.addr)
	require.NoError(t, err)
	assert.Equal(t, n.addr, got)
}

// Requests go out at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s (RFC 5389 section 7.2.1: RTO 500 ms,
// doubled, Rc = 7), and Discover gives up Rm = 16 RTOs after the last: at 39.5 s.
func TestDiscoverRetransmissionSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newMemNet()
		srv, addr := n.stunServer("192.0.2.1:3478")
		srv.setSilent(true)
		sock := n.socket(t, "10.0.0.1:5000")
		start := time.Now()
		_, err := Discover(context.Background(), sock, addr)
		require.ErrorIs(t, err, ErrSTUNTimeout)
		assert.Equal(t, 39500*time.Millisecond, time.Since(start))
		var at []time.Duration
		for _, r := range srv.requestTimes() {
			at = append(at, r.Sub(start))
		}
		ms := time.Millisecond
		assert.Equal(t, []time.Duration{0, 500 * ms, 1500 * ms, 3500 * ms, 7500 * ms, 15500 * ms, 31500 * ms}, at)

		// A server that answers the third request: the answer ends the wait at once.
		srv.setSilent(false)
		n.setDown(addr, true)
		start = time.Now()
		go func() {
			time.Sleep(stunRTO + stunRTO*2 - time.Millisecond)
			n.setDown(addr, false)
		}()
		got, err := Discover(context.Background(), sock, addr)
		require.NoError(t, err)
		assert.Equal(t, sock.LocalAddrPort(), got)
		assert.Equal(t, 3*stunRTO, time.Since(start), "answered at the third request")
	})
}

func TestDiscoverContextCanceled(t *testing.T) {
	srv := newSTUNServer(t)
	srv.setSilent(true)
	n := newTestNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Discover(ctx, n.sock, srv.addr)
	require.ErrorIs(t, err, context.Canceled)
}

// A forged or garbled response with our transaction ID does not end discovery; the real one
// still counts.
func TestDiscoverIgnoresBadResponse(t *testing.T) {
	server := netip.MustParseAddrPort("192.0.2.1:3478")
	var sock *Socket
	var once sync.Once
	sock = NewSocket(netip.MustParseAddrPort("10.0.0.1:5000"), func(req []byte, to netip.AddrPort) error {
		once.Do(func() {
			go func() {
				// A response from the server's address with a broken fingerprint, one from
				// elsewhere, then the good one.
				good, _ := bindingResponse(req, netip.MustParseAddrPort("198.51.100.7:40000"))
				bad := append([]byte(nil), good...)
				bad[len(bad)-1] ^= 0xff
				sock.Deliver(bad, to)
				other, _ := bindingResponse(req, netip.MustParseAddrPort("203.0.113.1:1"))
				sock.Deliver(other, netip.MustParseAddrPort("192.0.2.99:3478"))
				sock.Deliver(good, to)
			}()
		})
		return nil
	})
	defer sock.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := Discover(ctx, sock, server)
	require.NoError(t, err)
	assert.Equal(t, netip.MustParseAddrPort("198.51.100.7:40000"), got)
}

// FuzzParseBindingResponse: whatever a STUN server (or an attacker) sends, the parser returns
// an error or a usable address, and never panics.
func FuzzParseBindingResponse(f *testing.F) {
	id := stun.NewTransactionID()
	good, _ := stun.Build(stun.NewTransactionIDSetter(id), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: net.IPv4(192, 0, 2, 1), Port: 5}, stun.Fingerprint)
	mapped, _ := stun.Build(stun.NewTransactionIDSetter(id), stun.BindingSuccess,
		&stun.MappedAddress{IP: net.ParseIP("2001:db8::1"), Port: 7})
	errResp, _ := stun.Build(stun.NewTransactionIDSetter(id), stun.BindingError,
		stun.ErrorCodeAttribute{Code: stun.CodeBadRequest, Reason: []byte("bad")})
	f.Add(good.Raw)
	f.Add(mapped.Raw)
	f.Add(errResp.Raw)
	f.Add([]byte("not stun"))
	f.Fuzz(func(t *testing.T, b []byte) {
		addr, err := parseBindingResponse(b, id)
		if err == nil {
			require.True(t, addr.IsValid() && addr.Port() != 0 && !addr.Addr().Is4In6(), "accepted unusable address %v", addr)
		}
	})
}
