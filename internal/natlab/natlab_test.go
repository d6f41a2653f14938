//go:build linux

package natlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

const echoPort = 7000

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startEcho runs the UDP/TCP echo helper on h and waits until it listens.
func startEcho(ctx context.Context, t *testing.T, h *Host) string {
	t.Helper()
	p := h.StartHelper(ctx, HelperUDPEcho, "-listen", fmt.Sprintf(":%d", echoPort))
	if _, err := p.WaitFor(ctx, "ready "); err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(h.IP(), echoPort).String()
}

// probe runs the one-socket UDP probe on h and returns the mapped address per target.
func probe(ctx context.Context, t *testing.T, h *Host, local int, targets ...string) []netip.AddrPort {
	t.Helper()
	args := append([]string{"-local", fmt.Sprint(local)}, targets...)
	out, err := h.RunHelper(ctx, HelperUDPProbe, args...)
	if err != nil {
		t.Fatal(err)
	}
	var res []netip.AddrPort
	for _, target := range targets {
		m, ok := ParseMapped(string(out), target)
		if !ok {
			t.Fatalf("probe output has no mapping for %s:\n%s", target, out)
		}
		res = append(res, netip.MustParseAddrPort(m))
	}
	t.Logf("%s probe %v -> %v", h.Name(), targets, res)
	return res
}

func TestConeNATEndpointIndependentMapping(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	lab := New(t)
	pub := lab.PublicSegment()
	s1, s2 := lab.AddHost("s1", pub), lab.AddHost("s2", pub)
	nat := lab.AddNAT("nat1", pub, Cone)
	h1 := lab.AddHost("h1", nat.LAN())
	e1, e2 := startEcho(ctx, t, s1), startEcho(ctx, t, s2)

	m := probe(ctx, t, h1, 0, e1, e2)
	for i, a := range m {
		if a.Addr() != nat.IP() {
			t.Errorf("server %d saw %v, want the NAT's WAN IP %v", i+1, a, nat.IP())
		}
	}
	if m[0] != m[1] {
		t.Errorf("cone NAT: mapping toward %s is %v but toward %s is %v; want the same (endpoint-independent)", e1, m[0], e2, m[1])
	}
}

func TestSymmetricNATMappingDependsOnDestination(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	lab := New(t)
	pub := lab.PublicSegment()
	s1, s2 := lab.AddHost("s1", pub), lab.AddHost("s2", pub)
	nat := lab.AddNAT("nat1", pub, Symmetric)
	h1 := lab.AddHost("h1", nat.LAN())
	e1, e2 := startEcho(ctx, t, s1), startEcho(ctx, t, s2)

	m := probe(ctx, t, h1, 0, e1, e2)
	for i, a := range m {
		if a.Addr() != nat.IP() {
			t.Errorf("server %d saw %v, want the NAT's WAN IP %v", i+1, a, nat.IP())
		}
	}
	// fully-random picks each port at random: equal ports happen with probability ~1/64000.
	if m[0].Port() == m[1].Port() {
		t.Errorf("symmetric NAT: same mapped port %d toward both servers", m[0].Port())
	}
}

func TestBlockUDPNAT(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	lab := New(t)
	pub := lab.PublicSegment()
	s1 := lab.AddHost("s1", pub)
	nat := lab.AddNAT("nat1", pub, BlockUDP)
	h1 := lab.AddHost("h1", nat.LAN())
	e1 := startEcho(ctx, t, s1)

	out, err := h1.RunHelper(ctx, HelperUDPProbe, "-timeout", "1s", e1)
	if err == nil || !strings.Contains(string(out), "timeout") {
		t.Fatalf("UDP through a BlockUDP NAT: want a timeout, got err=%v output:\n%s", err, out)
	}
	out, err = h1.RunHelper(ctx, HelperTCPProbe, e1)
	if err != nil {
		t.Fatalf("TCP through a BlockUDP NAT: %v", err)
	}
	m, _ := ParseMapped(string(out), "")
	if a, err := netip.ParseAddrPort(m); err != nil || a.Addr() != nat.IP() {
		t.Errorf("TCP server saw %q, want the NAT's WAN IP %v", m, nat.IP())
	}
	rules, err := nat.Ruleset(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rules, "udp counter packets") || strings.Contains(rules, "udp counter packets 0 ") {
		t.Errorf("BlockUDP drop rule did not count the probe's packets:\n%s", rules)
	}
}

func TestSameLANDirect(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	lab := New(t)
	nat := lab.AddNAT("nat1", lab.PublicSegment(), Cone)
	h1, h2 := lab.AddHost("h1", nat.LAN()), lab.AddHost("h2", nat.LAN())
	if !nat.LAN().Prefix().Contains(h1.IP()) || !nat.LAN().Prefix().Contains(h2.IP()) {
		t.Fatalf("LAN hosts %v, %v not in %v", h1.IP(), h2.IP(), nat.LAN().Prefix())
	}
	e2 := startEcho(ctx, t, h2)
	m := probe(ctx, t, h1, 4500, e2)
	if want := netip.AddrPortFrom(h1.IP(), 4500); m[0] != want {
		t.Errorf("h2 saw %v, want h1's private address %v (no NAT on the LAN)", m[0], want)
	}
}

// udpRecv waits for the next datagram on c and returns its payload and source.
func udpRecv(t *testing.T, c *net.UDPConn) (string, netip.AddrPort) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("receive on %v: %v", c.LocalAddr(), err)
	}
	return string(buf[:n]), netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
}

func udpSend(t *testing.T, c *net.UDPConn, to netip.AddrPort, msg string) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(msg), to); err != nil {
		t.Fatalf("send %v -> %v: %v", c.LocalAddr(), to, err)
	}
}

func listenUDP(t *testing.T, h *Host, port int) *net.UDPConn {
	t.Helper()
	c, err := h.ListenUDP(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestInboundFiltering: unsolicited UDP from the internet does not reach a host behind a cone
// NAT, and neither does UDP from another port of a host it talks to; after the host sends to
// an ip:port, that ip:port's packets arrive (hole punching).
//
// Negative checks need no timeout: all packets travel the same path in order, so when a packet
// sent after the blocked one arrives, the blocked one would already have arrived.
func TestInboundFiltering(t *testing.T) {
	t.Parallel()
	lab := New(t)
	pub := lab.PublicSegment()
	srv := lab.AddHost("srv", pub)
	nat := lab.AddNAT("nat1", pub, Cone)
	h1 := lab.AddHost("h1", nat.LAN())

	hc := listenUDP(t, h1, 4500)
	a, b, c := listenUDP(t, srv, 5001), listenUDP(t, srv, 5002), listenUDP(t, srv, 5003)
	addrOf := func(c *net.UDPConn) netip.AddrPort {
		return netip.AddrPortFrom(srv.IP(), uint16(c.LocalAddr().(*net.UDPAddr).Port))
	}

	// Learn h1's mapping through b (a STUN-like exchange) and open b's way in.
	udpSend(t, hc, addrOf(b), "hello b")
	msg, mapped := udpRecv(t, b)
	if msg != "hello b" || mapped.Addr() != nat.IP() {
		t.Fatalf("b got %q from %v, want hello b from %v", msg, mapped, nat.IP())
	}

	udpSend(t, a, mapped, "unsolicited from a") // never sent to by h1: dropped
	udpSend(t, c, mapped, "from c")             // same IP as b, other port: dropped
	udpSend(t, b, mapped, "from b")             // h1 sent to b: arrives
	if msg, from := udpRecv(t, hc); msg != "from b" || from != addrOf(b) {
		t.Fatalf("h1 received %q from %v; want only %q from %v (inbound filtering)", msg, from, "from b", addrOf(b))
	}

	// Punch: h1 sends to a; now a's packets arrive.
	udpSend(t, hc, addrOf(a), "punch a")
	if msg, from := udpRecv(t, a); msg != "punch a" || from != mapped {
		t.Fatalf("a got %q from %v, want punch a from %v (same mapping)", msg, from, mapped)
	}
	udpSend(t, a, mapped, "from a")
	if msg, from := udpRecv(t, hc); msg != "from a" || from != addrOf(a) {
		t.Fatalf("h1 received %q from %v; want from a after punching", msg, from)
	}
}

// TestHolePunchTwoConeNATs: two hosts behind two different cone NATs learn their mappings from
// a public server and then reach each other directly at those mappings, even though each
// side's first packet arrives at the other NAT unsolicited.
func TestHolePunchTwoConeNATs(t *testing.T) {
	t.Parallel()
	lab := New(t)
	pub := lab.PublicSegment()
	stun := lab.AddHost("stun", pub)
	nat1, nat2 := lab.AddNAT("nat1", pub, Cone), lab.AddNAT("nat2", pub, Cone)
	h1, h2 := lab.AddHost("h1", nat1.LAN()), lab.AddHost("h2", nat2.LAN())
	sc := listenUDP(t, stun, 3478)
	stunAddr := netip.AddrPortFrom(stun.IP(), 3478)
	c1, c2 := listenUDP(t, h1, 4500), listenUDP(t, h2, 4500)

	udpSend(t, c1, stunAddr, "h1")
	_, m1 := udpRecv(t, sc)
	udpSend(t, c2, stunAddr, "h2")
	_, m2 := udpRecv(t, sc)
	t.Logf("h1 is %v, h2 is %v", m1, m2)

	// h1's first packet reaches nat2 before h2 has sent anything: dropped there. Then h2's
	// packet passes nat1 (h1 sent to m2), and h1's next packet passes nat2.
	udpSend(t, c1, m2, "h1 first")
	udpSend(t, c2, m1, "h2 first")
	if msg, from := udpRecv(t, c1); msg != "h2 first" || from != m2 {
		t.Fatalf("h1 got %q from %v, want h2 first from %v", msg, from, m2)
	}
	udpSend(t, c1, m2, "h1 second")
	if msg, from := udpRecv(t, c2); msg != "h1 second" || from != m1 {
		t.Fatalf("h2 got %q from %v, want h1 second from %v", msg, from, m1)
	}
}

// TestMappingChanges forces mapping changes while a flow is running: changing the port range
// (which flushes conntrack) on a cone NAT, and flushing conntrack on a symmetric NAT.
func TestMappingChanges(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	lab := New(t)
	pub := lab.PublicSegment()
	srv := lab.AddHost("srv", pub)
	cone, sym := lab.AddNAT("cone", pub, Cone), lab.AddNAT("sym", pub, Symmetric)
	h1, h2 := lab.AddHost("h1", cone.LAN()), lab.AddHost("h2", sym.LAN())
	echo := startEcho(ctx, t, srv)

	// waitMapped waits for a "mapped=" line that satisfies ok and returns its address.
	waitMapped := func(p *Process, what string, ok func(netip.AddrPort) bool) netip.AddrPort {
		t.Helper()
		var got netip.AddrPort
		_, err := p.WaitLine(ctx, func(l string) bool {
			m, found := strings.CutPrefix(l, "mapped=")
			if !found {
				return false
			}
			a, err := netip.ParseAddrPort(m)
			if err == nil && ok(a) {
				got = a
				return true
			}
			return false
		})
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		t.Logf("%s: %v", what, got)
		return got
	}
	inRange := func(lo, hi uint16) func(netip.AddrPort) bool {
		return func(a netip.AddrPort) bool { return a.Port() >= lo && a.Port() <= hi }
	}

	p1 := h1.StartHelper(ctx, HelperUDPStream, "-local", "4500", echo)
	first := waitMapped(p1, "cone NAT initial mapping", func(netip.AddrPort) bool { return true })
	if first.Addr() != cone.IP() {
		t.Fatalf("server saw %v, want the NAT's WAN IP %v", first, cone.IP())
	}
	if err := cone.SetPortRange(20000, 20999); err != nil {
		t.Fatal(err)
	}
	waitMapped(p1, "cone NAT mapping after SetPortRange(20000, 20999)", inRange(20000, 20999))
	if err := cone.SetPortRange(30000, 30999); err != nil {
		t.Fatal(err)
	}
	waitMapped(p1, "cone NAT mapping after SetPortRange(30000, 30999)", inRange(30000, 30999))

	p2 := h2.StartHelper(ctx, HelperUDPStream, "-local", "4500", echo)
	before := waitMapped(p2, "symmetric NAT initial mapping", func(netip.AddrPort) bool { return true })
	if err := sym.FlushConntrack(); err != nil {
		t.Fatal(err)
	}
	// A new random port; the same one again has probability ~1/64000.
	waitMapped(p2, "symmetric NAT mapping after FlushConntrack", func(a netip.AddrPort) bool { return a != before })
}

// TestFlushConntrackCone documents what a flush does to a cone NAT: the flow gets a new
// conntrack entry, but Linux prefers to give the original mapping again when it is free.
func TestFlushConntrackCone(t *testing.T) {
	t.Parallel()
	lab := New(t)
	pub := lab.PublicSegment()
	srv := lab.AddHost("srv", pub)
	nat := lab.AddNAT("nat1", pub, Cone)
	h1 := lab.AddHost("h1", nat.LAN())
	sc := listenUDP(t, srv, 5000)
	hc := listenUDP(t, h1, 4500)
	srvAddr := netip.AddrPortFrom(srv.IP(), 5000)

	udpSend(t, hc, srvAddr, "one")
	_, m1 := udpRecv(t, sc)
	if err := nat.FlushConntrack(); err != nil {
		t.Fatal(err)
	}
	// After the flush the server's packet finds no mapping: dropped. h1's next packet makes a
	// new one; the server's reply to it then arrives (and nothing before it).
	udpSend(t, sc, m1, "lost")
	udpSend(t, hc, srvAddr, "two")
	msg, m2 := udpRecv(t, sc)
	if msg != "two" {
		t.Fatalf("server got %q", msg)
	}
	udpSend(t, sc, m2, "reply")
	if msg, _ := udpRecv(t, hc); msg != "reply" {
		t.Fatalf("h1 got %q, want reply (the packet sent into the flushed mapping must be dropped)", msg)
	}
	t.Logf("cone NAT mapping before flush %v, after %v", m1, m2)
	if m1.Port() != 4500 || m2 != m1 {
		t.Errorf("cone NAT mappings %v then %v: expected Linux to keep the source port 4500 both times", m1, m2)
	}
}

// TestMoveTo moves a host from behind one NAT to behind another, with its socket open.
func TestMoveTo(t *testing.T) {
	t.Parallel()
	lab := New(t)
	pub := lab.PublicSegment()
	srv := lab.AddHost("srv", pub)
	nat1, nat2 := lab.AddNAT("nat1", pub, Cone), lab.AddNAT("nat2", pub, Symmetric)
	h := lab.AddHost("h", nat1.LAN())
	sc, hc := listenUDP(t, srv, 5000), listenUDP(t, h, 4500)
	srvAddr := netip.AddrPortFrom(srv.IP(), 5000)
	udpSend(t, hc, srvAddr, "from nat1")
	if _, from := udpRecv(t, sc); from.Addr() != nat1.IP() {
		t.Fatalf("server saw %v, want %v", from, nat1.IP())
	}
	if err := h.MoveTo(nat2.LAN()); err != nil {
		t.Fatal(err)
	}
	if !nat2.LAN().Prefix().Contains(h.IP()) {
		t.Fatalf("moved host has %v, want an address in %v", h.IP(), nat2.LAN().Prefix())
	}
	udpSend(t, hc, srvAddr, "from nat2")
	if msg, from := udpRecv(t, sc); msg != "from nat2" || from.Addr() != nat2.IP() {
		t.Fatalf("server got %q from %v, want from nat2 via %v", msg, from, nat2.IP())
	}
}

func labNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	// Cross-check with ip netns list.
	list, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, list)
	}
	n := 0
	for _, l := range strings.Split(string(list), "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	if n != len(out) {
		t.Errorf("ip netns list shows %d namespaces with prefix %s, /run/netns %d", n, prefix, len(out))
	}
	return out
}

func TestCloseRemovesEverything(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	lab := New(t)
	pub := lab.PublicSegment()
	nat := lab.AddNAT("nat1", pub, Cone)
	h1 := lab.AddHost("h1", nat.LAN())
	p := h1.Start(ctx, "sleep", "600")
	if got := labNamespaces(t, lab.Prefix()); len(got) != 3 {
		t.Fatalf("namespaces with prefix %s: %v, want 3", lab.Prefix(), got)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if got := labNamespaces(t, lab.Prefix()); len(got) != 0 {
		t.Errorf("after Close: namespaces left: %v", got)
	}
	select {
	case <-p.Done():
	default:
		t.Error("process still running after Close")
	}
	if err := lab.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestNamesValidated: bad and duplicate names are refused.
func TestNamesValidated(t *testing.T) {
	t.Parallel()
	lab := New(t)
	for _, name := range []string{"", "Upper", "with-dash", "toolongname123", "inet", "1abc"} {
		if _, err := lab.addHost(name, lab.PublicSegment(), "eth0", false); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
}

// crashChildEnv makes TestCrashChild build a lab and then die: "kill" (SIGKILL, no cleanup)
// or "panic" (test panics; t.Cleanup still runs).
const crashChildEnv = "NATLAB_TEST_CRASH_CHILD"

func TestCrashChild(t *testing.T) {
	mode := os.Getenv(crashChildEnv)
	if mode == "" {
		t.Skip("helper for TestCleanupAfterCrash")
	}
	lab := New(t)
	nat := lab.AddNAT("nat1", lab.PublicSegment(), Cone)
	lab.AddHost("h1", nat.LAN())
	fmt.Printf("PREFIX=%s\n", lab.Prefix())
	os.Stdout.Sync()
	switch mode {
	case "kill":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	case "panic":
		panic("crash child panics on purpose")
	}
}

func TestCleanupAfterCrash(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("inside a crash child")
	}
	New(t) // skips where the lab cannot run
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"panic", "kill"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(exe, "-test.run=^TestCrashChild$", "-test.v")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+mode)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err == nil {
				t.Fatalf("crash child exited 0:\n%s", out.String())
			}
			_, after, ok := strings.Cut(out.String(), "PREFIX=")
			if !ok {
				t.Fatalf("crash child printed no prefix:\n%s", out.String())
			}
			prefix := strings.Fields(after)[0]
			left := labNamespaces(t, prefix)
			switch mode {
			case "panic":
				if len(left) != 0 {
					t.Errorf("panicking test left namespaces: %v\n%s", left, out.String())
				}
			case "kill":
				if len(left) != 3 {
					t.Fatalf("killed child left %v, want 3 namespaces to sweep", left)
				}
				if err := Sweep(); err != nil {
					t.Fatal(err)
				}
				if left := labNamespaces(t, prefix); len(left) != 0 {
					t.Errorf("after Sweep: %v", left)
				}
			}
		})
	}
}

func TestOwnerPID(t *testing.T) {
	for name, want := range map[string]int{
		"nxl-123-ab12-1-h1":   123,
		"nxl-123-ab12-1-inet": 123,
		"nxl-x-ab12-1-h1":     0,
		"nxl-123":             0,
		"other-123-ab12-1-h1": 0,
	} {
		got, ok := ownerPID(name)
		if got != want || ok != (want != 0) {
			t.Errorf("ownerPID(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
}

// TestDoubleNAT: a cone NAT behind a symmetric NAT; the public server sees the outer NAT.
func TestDoubleNAT(t *testing.T) {
	t.Parallel()
	lab := New(t)
	pub := lab.PublicSegment()
	srv := lab.AddHost("srv", pub)
	outer := lab.AddNAT("outer", pub, Symmetric)
	inner := lab.AddNAT("inner", outer.LAN(), Cone)
	if !outer.LAN().Prefix().Contains(inner.IP()) {
		t.Fatalf("inner NAT's WAN %v not on the outer LAN %v", inner.IP(), outer.LAN().Prefix())
	}
	h := lab.AddHost("h", inner.LAN())
	sc, hc := listenUDP(t, srv, 5000), listenUDP(t, h, 4500)
	udpSend(t, hc, netip.AddrPortFrom(srv.IP(), 5000), "hi")
	if msg, from := udpRecv(t, sc); msg != "hi" || from.Addr() != outer.IP() {
		t.Fatalf("server got %q from %v, want hi from the outer NAT %v", msg, from, outer.IP())
	}
}
