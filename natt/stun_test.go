package natt

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

func TestDiscoverReturnsSocketAddress(t *testing.T) {
	srv := newSTUNServer(t)
	n := newTestNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := Discover(ctx, n.sock, srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	if got != n.addr {
		t.Fatalf("Discover = %v, want %v", got, n.addr)
	}
}

func TestDiscoverTimeout(t *testing.T) {
	srv := newSTUNServer(t)
	srv.setSilent(true)
	n := newTestNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := discover(ctx, n.sock, srv.addr, time.Millisecond)
	if !errors.Is(err, ErrSTUNTimeout) {
		t.Fatalf("err = %v, want ErrSTUNTimeout", err)
	}
	if got := srv.requestCount(); got != stunRc {
		t.Fatalf("server saw %d requests, want %d", got, stunRc)
	}
}

func TestDiscoverContextCanceled(t *testing.T) {
	srv := newSTUNServer(t)
	srv.setSilent(true)
	n := newTestNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Discover(ctx, n.sock, srv.addr); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// A forged or garbled response with our transaction ID does not end discovery; the real one
// still counts.
func TestDiscoverIgnoresBadResponse(t *testing.T) {
	server := netip.MustParseAddrPort("192.0.2.1:3478")
	var sock *Socket
	var once sync.Once
	sock = NewSocket(netip.MustParseAddrPort("10.0.0.1:5000"), func(b []byte, to netip.AddrPort) error {
		var req stun.Message
		req.Raw = append([]byte(nil), b...)
		if err := req.Decode(); err != nil {
			return err
		}
		once.Do(func() {
			go func() {
				// Truncated response from the server's address, then one from elsewhere, then
				// the good one.
				good, _ := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
					&stun.XORMappedAddress{IP: net.IPv4(198, 51, 100, 7), Port: 40000}, stun.Fingerprint)
				bad := append([]byte(nil), good.Raw...)
				bad[len(bad)-1] ^= 0xff // breaks the fingerprint
				sock.Deliver(bad, to)
				other, _ := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
					&stun.XORMappedAddress{IP: net.IPv4(203, 0, 113, 1), Port: 1}, stun.Fingerprint)
				sock.Deliver(other.Raw, netip.MustParseAddrPort("192.0.2.99:3478"))
				sock.Deliver(good.Raw, to)
			}()
		})
		return nil
	})
	defer sock.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := Discover(ctx, sock, server)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddrPort("198.51.100.7:40000"); got != want {
		t.Fatalf("Discover = %v, want %v", got, want)
	}
}

func TestDetectNATNone(t *testing.T) {
	a, b := newSTUNServer(t), newSTUNServer(t)
	// Bound to 127.0.0.1, and bound to 0.0.0.0 as mesh binds (then the reflexive address is
	// compared with the interface addresses).
	for _, n := range []*testNode{newTestNode(t), newTestNodeAt(t, net.IPv4zero)} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		info, err := DetectNAT(ctx, n.sock, []netip.AddrPort{a.addr, b.addr})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if info.Type != NATNone || info.Reflexive != n.addr || len(info.Mappings) != 2 {
			t.Fatalf("bound to %v: info = %+v", n.sock.LocalAddrPort(), info)
		}
	}
}

func TestDetectNATEndpointIndependent(t *testing.T) {
	public := netip.MustParseAddrPort("198.51.100.7:40000")
	a, b := newSTUNServer(t), newSTUNServer(t)
	a.setMapping(func(netip.AddrPort) netip.AddrPort { return public })
	b.setMapping(func(netip.AddrPort) netip.AddrPort { return public })
	n := newTestNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := DetectNAT(ctx, n.sock, []netip.AddrPort{a.addr, b.addr})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != NATEndpointIndependent || info.Reflexive != public || info.Type.Symmetric() {
		t.Fatalf("info = %+v", info)
	}
}

func TestDetectNATSymmetric(t *testing.T) {
	a, b := newSTUNServer(t), newSTUNServer(t)
	a.setMapping(func(netip.AddrPort) netip.AddrPort { return netip.MustParseAddrPort("198.51.100.7:40000") })
	b.setMapping(func(netip.AddrPort) netip.AddrPort { return netip.MustParseAddrPort("198.51.100.7:40001") })
	n := newTestNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := DetectNAT(ctx, n.sock, []netip.AddrPort{a.addr, b.addr})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != NATSymmetric || !info.Type.Symmetric() {
		t.Fatalf("info = %+v", info)
	}
}

func TestDetectNATNotEnoughServers(t *testing.T) {
	a, b := newSTUNServer(t), newSTUNServer(t)
	b.setSilent(true)
	n := newTestNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := DetectNAT(ctx, n.sock, []netip.AddrPort{a.addr, a.addr}); !errors.Is(err, ErrNotEnoughServers) {
		t.Fatalf("one distinct server: err = %v", err)
	}
	info, err := detectNAT(ctx, n.sock, []netip.AddrPort{a.addr, b.addr}, time.Millisecond, localAddrs)
	if !errors.Is(err, ErrNotEnoughServers) || !errors.Is(err, ErrSTUNTimeout) {
		t.Fatalf("one answer: err = %v", err)
	}
	if info.Type != NATUnknown || info.Reflexive != n.addr {
		t.Fatalf("one answer: info = %+v", info)
	}
}

func TestIsLocalUnspecified(t *testing.T) {
	locals := func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("192.0.2.5")} }
	local := netip.MustParseAddrPort("0.0.0.0:5000")
	if !isLocal(netip.MustParseAddrPort("192.0.2.5:5000"), local, locals) {
		t.Fatal("own interface address not recognised")
	}
	if isLocal(netip.MustParseAddrPort("192.0.2.5:5001"), local, locals) {
		t.Fatal("other port counted as local")
	}
	if isLocal(netip.MustParseAddrPort("198.51.100.1:5000"), local, locals) {
		t.Fatal("public address counted as local")
	}
}

func TestMonitorReportsChanges(t *testing.T) {
	a, b := newSTUNServer(t), newSTUNServer(t)
	n := newTestNode(t)
	changes := make(chan NATInfo, 10)
	mon := NewMonitor(MonitorConfig{
		Socket: n.sock,
		Servers: func(context.Context) ([]netip.AddrPort, error) {
			return []netip.AddrPort{a.addr, b.addr}, nil
		},
		Interval:          time.Hour,
		InterfaceInterval: -1,
		Logger:            testLogger(t),
		OnChange:          func(_, cur NATInfo) { changes <- cur },
	})
	defer mon.Close()

	first := <-changes
	if first.Type != NATNone {
		t.Fatalf("first check: %+v", first)
	}
	// The laptop moves behind a symmetric NAT.
	a.setMapping(func(netip.AddrPort) netip.AddrPort { return netip.MustParseAddrPort("198.51.100.7:40000") })
	b.setMapping(func(netip.AddrPort) netip.AddrPort { return netip.MustParseAddrPort("198.51.100.7:40001") })
	mon.Recheck()
	second := <-changes
	if second.Type != NATSymmetric {
		t.Fatalf("after move: %+v", second)
	}
	if cur, err := mon.Current(); err != nil || cur.Type != NATSymmetric {
		t.Fatalf("Current = %+v, %v", cur, err)
	}
	if err := mon.Close(); err != nil {
		t.Fatal(err)
	}
	if err := mon.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMonitorInterfaceChangeTriggersCheck(t *testing.T) {
	a, b := newSTUNServer(t), newSTUNServer(t)
	n := newTestNode(t)
	var mu sync.Mutex
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	changes := make(chan NATInfo, 10)
	mon := NewMonitor(MonitorConfig{
		Socket: n.sock,
		Servers: func(context.Context) ([]netip.AddrPort, error) {
			return []netip.AddrPort{a.addr, b.addr}, nil
		},
		Interval:          time.Hour,
		InterfaceInterval: 5 * time.Millisecond,
		OnChange:          func(_, cur NATInfo) { changes <- cur },
		interfaces: func() []netip.Addr {
			mu.Lock()
			defer mu.Unlock()
			return addrs
		},
	})
	defer mon.Close()
	<-changes
	public := netip.MustParseAddrPort("198.51.100.7:40000")
	a.setMapping(func(netip.AddrPort) netip.AddrPort { return public })
	b.setMapping(func(netip.AddrPort) netip.AddrPort { return public })
	mu.Lock()
	addrs = []netip.Addr{netip.MustParseAddr("10.1.2.3")}
	mu.Unlock()
	if got := <-changes; got.Type != NATEndpointIndependent || got.Reflexive != public {
		t.Fatalf("after interface change: %+v", got)
	}
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
		if err == nil && (!addr.IsValid() || addr.Port() == 0 || addr.Addr().Is4In6()) {
			t.Fatalf("accepted unusable address %v", addr)
		}
	})
}

func TestResolveServers(t *testing.T) {
	ctx := context.Background()
	got, err := ResolveServers(ctx, nil, []string{"127.0.0.1:3478", "stun:[::1]:3479", "127.0.0.2:x"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:3478"), netip.MustParseAddrPort("[::1]:3479")}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := ResolveServers(ctx, nil, []string{"nohostport"}); err == nil {
		t.Fatal("bad server accepted")
	}
	if _, err := ResolveServers(ctx, nil, nil); err == nil {
		t.Fatal("empty list accepted")
	}
}

// OnCheck hears every result, not only changes: a check that failed (which makes the root
// assume UDP may be blocked) must be followed by word that the NAT is as it was.
func TestMonitorOnCheckEveryResult(t *testing.T) {
	a, b := newSTUNServer(t), newSTUNServer(t)
	n := newTestNode(t)
	var fail atomic.Bool
	type result struct {
		info NATInfo
		err  error
	}
	checks := make(chan result, 10)
	changes := make(chan NATInfo, 10)
	mon := NewMonitor(MonitorConfig{
		Socket: n.sock,
		Servers: func(context.Context) ([]netip.AddrPort, error) {
			if fail.Load() {
				return nil, errors.New("no servers")
			}
			return []netip.AddrPort{a.addr, b.addr}, nil
		},
		Interval:          time.Hour,
		InterfaceInterval: -1,
		Logger:            testLogger(t),
		OnCheck:           func(cur NATInfo, err error) { checks <- result{cur, err} },
		OnChange:          func(_, cur NATInfo) { changes <- cur },
	})
	defer mon.Close()
	if r := <-checks; r.err != nil || r.info.Type != NATNone {
		t.Fatalf("first check: %+v", r)
	}
	<-changes
	fail.Store(true)
	mon.Recheck()
	if r := <-checks; r.err == nil {
		t.Fatalf("check without servers: %+v, want an error", r)
	}
	fail.Store(false)
	mon.Recheck()
	if r := <-checks; r.err != nil || r.info.Type != NATNone {
		t.Fatalf("check after the failure: %+v", r)
	}
	// One more check: OnChange for the previous one, if any, has run once this one reports.
	mon.Recheck()
	<-checks
	if len(changes) != 0 {
		t.Fatalf("OnChange called for an unchanged result: %+v", <-changes)
	}
}
