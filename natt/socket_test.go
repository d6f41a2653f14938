package natt

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

func stunRequest(t testing.TB) []byte {
	t.Helper()
	m, err := stun.Build(stun.TransactionID, stun.BindingRequest)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
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
	req := stunRequest(t)
	if !s.Deliver(req, from) {
		t.Fatal("STUN message not accepted")
	}
	if s.Deliver([]byte{4, 0, 0, 0, 1, 2, 3}, from) {
		t.Fatal("non-STUN datagram accepted")
	}
	buf := make([]byte, 1500)
	n, addr, err := s.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != string(req) {
		t.Fatal("read different bytes")
	}
	if got := addr.(*net.UDPAddr).AddrPort(); got != netip.MustParseAddrPort("192.0.2.1:3478") {
		t.Fatalf("from = %v, want the unmapped address", got)
	}
	if _, err := s.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(from)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(wrote) != 1 || wrote[0] != netip.MustParseAddrPort("192.0.2.1:3478") {
		t.Fatalf("wrote to %v", wrote)
	}
	mu.Unlock()
	st := s.Stats()
	if st.Delivered != 1 || st.Ignored != 1 || st.Sent != 1 || st.Dropped != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if got := s.LocalAddr().String(); got != "127.0.0.1:1000" {
		t.Fatalf("LocalAddr = %s", got)
	}
}

func TestSocketQueueBounded(t *testing.T) {
	s := NewSocket(netip.MustParseAddrPort("127.0.0.1:1000"), func([]byte, netip.AddrPort) error { return nil })
	defer s.Close()
	from := netip.MustParseAddrPort("192.0.2.1:3478")
	req := stunRequest(t)
	for i := 0; i < DefaultSocketQueue+10; i++ {
		s.Deliver(req, from)
	}
	if st := s.Stats(); st.Delivered != DefaultSocketQueue || st.Dropped != 10 {
		t.Fatalf("stats = %+v", st)
	}
	buf := make([]byte, 1500)
	for i := 0; i < DefaultSocketQueue; i++ {
		if _, _, err := s.ReadFromAddrPort(buf); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSocketCloseUnblocksReaders(t *testing.T) {
	s := NewSocket(netip.MustParseAddrPort("127.0.0.1:1000"), func([]byte, netip.AddrPort) error { return nil })
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			_, _, err := s.ReadFrom(make([]byte, 100))
			errs <- err
		}()
	}
	s.Close()
	for i := 0; i < 2; i++ {
		if err := <-errs; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after close: %v", err)
		}
	}
	if _, err := s.WriteToAddrPort([]byte("x"), netip.MustParseAddrPort("192.0.2.1:1")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if s.Deliver(stunRequest(t), netip.MustParseAddrPort("192.0.2.1:1")) {
		t.Fatal("Deliver after close accepted")
	}
}

func TestSocketReadDeadline(t *testing.T) {
	s := NewSocket(netip.MustParseAddrPort("127.0.0.1:1000"), func([]byte, netip.AddrPort) error { return nil })
	defer s.Close()
	if err := s.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.ReadFrom(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past deadline: %v", err)
	}
	// A deadline set while a reader waits wakes it.
	if err := s.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 1)
	go func() {
		_, _, err := s.ReadFrom(make([]byte, 10))
		errs <- err
	}()
	_ = s.SetReadDeadline(time.Now())
	if err := <-errs; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v", err)
	}
}

func TestSockViewCloseKeepsSocket(t *testing.T) {
	s := NewSocket(netip.MustParseAddrPort("127.0.0.1:1000"), func([]byte, netip.AddrPort) error { return nil })
	defer s.Close()
	v := newSockView(s)
	errs := make(chan error, 1)
	go func() {
		_, _, err := v.ReadFrom(make([]byte, 10))
		errs <- err
	}()
	v.Close()
	if err := <-errs; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("view read after close: %v", err)
	}
	if _, err := s.WriteToAddrPort([]byte("x"), netip.MustParseAddrPort("192.0.2.1:1")); err != nil {
		t.Fatalf("socket write after view close: %v", err)
	}
}

// FuzzSocketDeliver feeds arbitrary datagrams to a Socket with a Discover transaction pending:
// nothing may panic, and whatever is queued reads back unchanged.
func FuzzSocketDeliver(f *testing.F) {
	req, _ := stun.Build(stun.TransactionID, stun.BindingRequest)
	resp, _ := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: net.IPv4(192, 0, 2, 1), Port: 5}, stun.Fingerprint)
	f.Add(req.Raw)
	f.Add(resp.Raw)
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := NewSocket(netip.MustParseAddrPort("127.0.0.1:1000"), func([]byte, netip.AddrPort) error { return nil })
		defer s.Close()
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
		_ = s.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 65535)
		n, got, err := s.ReadFromAddrPort(buf)
		if err != nil || got != from || string(buf[:n]) != string(b) {
			t.Fatalf("read back %d bytes from %v, err %v", n, got, err)
		}
	})
}
