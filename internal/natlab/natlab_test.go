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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const echoPort = 7000

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// serverAndNAT builds the lab most cases need: a public host "srv" and a host "h1" behind a
// NAT "nat1" of kind.
func serverAndNAT(t *testing.T, kind Kind) (lab *Lab, srv *Host, nat *NAT, h1 *Host) {
	t.Helper()
	lab = New(t)
	pub := lab.PublicSegment()
	srv = lab.AddHost("srv", pub)
	nat = lab.AddNAT("nat1", pub, kind)
	return lab, srv, nat, lab.AddHost("h1", nat.LAN())
}

// startEcho runs the UDP/TCP echo helper on h and waits until it listens.
func startEcho(ctx context.Context, t *testing.T, h *Host) string {
	t.Helper()
	p := h.StartHelper(ctx, HelperUDPEcho, "-listen", fmt.Sprintf(":%d", echoPort))
	_, err := p.WaitFor(ctx, "ready ")
	require.NoError(t, err)
	return netip.AddrPortFrom(h.IP(), echoPort).String()
}

// probe runs the one-socket UDP probe on h and returns the mapped address per target.
func probe(ctx context.Context, t *testing.T, h *Host, local int, targets ...string) []netip.AddrPort {
	t.Helper()
	args := append([]string{"-local", fmt.Sprint(local)}, targets...)
	out, err := h.RunHelper(ctx, HelperUDPProbe, args...)
	require.NoError(t, err)
	var res []netip.AddrPort
	for _, target := range targets {
		m, ok := ParseMapped(string(out), target)
		require.True(t, ok, "probe output has no mapping for %s:\n%s", target, out)
		res = append(res, netip.MustParseAddrPort(m))
	}
	t.Logf("%s probe %v -> %v", h.Name(), targets, res)
	return res
}

// TestNATMapping: from one socket to two servers, a cone NAT keeps one mapping
// (endpoint-independent) and a symmetric NAT makes one per destination.
func TestNATMapping(t *testing.T) {
	for _, kind := range []Kind{Cone, Symmetric} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			lab, s1, nat, h1 := serverAndNAT(t, kind)
			s2 := lab.AddHost("s2", lab.PublicSegment())
			e1, e2 := startEcho(ctx, t, s1), startEcho(ctx, t, s2)

			m := probe(ctx, t, h1, 0, e1, e2)
			for i, a := range m {
				assert.Equal(t, nat.IP(), a.Addr(), "server %d sees the NAT's WAN IP", i+1)
			}
			if kind == Cone {
				assert.Equal(t, m[0], m[1], "the mappings toward %s and %s", e1, e2)
			} else {
				// fully-random picks each port at random: equal ports happen with probability ~1/64000.
				assert.NotEqual(t, m[0].Port(), m[1].Port(), "the mapped ports toward %s and %s", e1, e2)
			}
		})
	}
}

func TestBlockUDPNAT(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, srv, nat, h1 := serverAndNAT(t, BlockUDP)
	e1 := startEcho(ctx, t, srv)

	out, err := h1.RunHelper(ctx, HelperUDPProbe, "-timeout", "1s", e1)
	require.Error(t, err, "UDP through a BlockUDP NAT")
	require.Contains(t, string(out), "timeout", "UDP through a BlockUDP NAT")
	out, err = h1.RunHelper(ctx, HelperTCPProbe, e1)
	require.NoError(t, err, "TCP through a BlockUDP NAT")
	m, _ := ParseMapped(string(out), "")
	a, err := netip.ParseAddrPort(m)
	if assert.NoError(t, err, "what the TCP server saw") {
		assert.Equal(t, nat.IP(), a.Addr(), "the TCP server sees the NAT's WAN IP")
	}
	rules, err := nat.Ruleset(ctx)
	require.NoError(t, err)
	assert.Contains(t, rules, "udp counter packets", "the BlockUDP drop rule")
	assert.NotContains(t, rules, "udp counter packets 0 ", "the BlockUDP drop rule counted nothing")
}

// TestBlockPeerUDPNAT: behind a BlockPeerUDP NAT, UDP reaches a public host (and finds the
// NAT's mapping, as STUN would) but not another NAT's WAN address, where peers are.
func TestBlockPeerUDPNAT(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	lab, srv, nat, h1 := serverAndNAT(t, BlockPeerUDP)
	other := lab.AddNAT("nat2", lab.PublicSegment(), Cone)
	e1 := startEcho(ctx, t, srv)

	m := probe(ctx, t, h1, 0, e1)
	assert.Equal(t, nat.IP(), m[0].Addr(), "the public server sees the NAT's WAN IP")
	out, err := h1.RunHelper(ctx, HelperUDPProbe, "-timeout", "1s", netip.AddrPortFrom(other.IP(), echoPort).String())
	require.Error(t, err, "UDP toward another NAT through a BlockPeerUDP NAT")
	require.Contains(t, string(out), "timeout", "UDP toward another NAT through a BlockPeerUDP NAT")
	rules, err := nat.Ruleset(ctx)
	require.NoError(t, err)
	assert.Contains(t, rules, "BlockPeerUDP", "the BlockPeerUDP drop rule")
	assert.NotContains(t, rules, "udp counter packets 0 ", "the BlockPeerUDP drop rule counted nothing")
}

func TestSameLANDirect(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	lab := New(t)
	nat := lab.AddNAT("nat1", lab.PublicSegment(), Cone)
	h1, h2 := lab.AddHost("h1", nat.LAN()), lab.AddHost("h2", nat.LAN())
	for _, h := range []*Host{h1, h2} {
		require.True(t, nat.LAN().Prefix().Contains(h.IP()), "LAN host %v not in %v", h.IP(), nat.LAN().Prefix())
	}
	e2 := startEcho(ctx, t, h2)
	m := probe(ctx, t, h1, 4500, e2)
	assert.Equal(t, netip.AddrPortFrom(h1.IP(), 4500), m[0], "h2 sees h1's private address (no NAT on the LAN)")
}

// udpRecv waits for the next datagram on c and returns its payload and source.
func udpRecv(t *testing.T, c *net.UDPConn) (string, netip.AddrPort) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	require.NoError(t, err, "receive on %v", c.LocalAddr())
	return string(buf[:n]), netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
}

// udpExpect waits for the next datagram on c and requires it to be msg from from.
func udpExpect(t *testing.T, c *net.UDPConn, msg string, from netip.AddrPort) {
	t.Helper()
	got, src := udpRecv(t, c)
	require.Equal(t, msg, got, "received on %v", c.LocalAddr())
	require.Equal(t, from, src, "sender of %q", got)
}

func udpSend(t *testing.T, c *net.UDPConn, to netip.AddrPort, msg string) {
	t.Helper()
	_, err := c.WriteToUDPAddrPort([]byte(msg), to)
	require.NoError(t, err, "send %v -> %v", c.LocalAddr(), to)
}

func listenUDP(t *testing.T, h *Host, port int) *net.UDPConn {
	t.Helper()
	c, err := h.ListenUDP(port)
	require.NoError(t, err)
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
	_, srv, nat, h1 := serverAndNAT(t, Cone)
	hc := listenUDP(t, h1, 4500)
	a, b, c := listenUDP(t, srv, 5001), listenUDP(t, srv, 5002), listenUDP(t, srv, 5003)
	addrOf := func(c *net.UDPConn) netip.AddrPort {
		return netip.AddrPortFrom(srv.IP(), uint16(c.LocalAddr().(*net.UDPAddr).Port))
	}

	// Learn h1's mapping through b (a STUN-like exchange) and open b's way in.
	udpSend(t, hc, addrOf(b), "hello b")
	msg, mapped := udpRecv(t, b)
	require.Equal(t, "hello b", msg)
	require.Equal(t, nat.IP(), mapped.Addr(), "b sees the NAT's WAN IP")

	udpSend(t, a, mapped, "unsolicited from a") // never sent to by h1: dropped
	udpSend(t, c, mapped, "from c")             // same IP as b, other port: dropped
	udpSend(t, b, mapped, "from b")             // h1 sent to b: arrives
	udpExpect(t, hc, "from b", addrOf(b))       // and nothing before it: inbound filtering

	// Punch: h1 sends to a; now a's packets arrive.
	udpSend(t, hc, addrOf(a), "punch a")
	udpExpect(t, a, "punch a", mapped) // the same mapping
	udpSend(t, a, mapped, "from a")
	udpExpect(t, hc, "from a", addrOf(a))
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
	udpExpect(t, c1, "h2 first", m2)
	udpSend(t, c1, m2, "h1 second")
	udpExpect(t, c2, "h1 second", m1)
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
		require.NoError(t, err, "waiting for %s", what)
		t.Logf("%s: %v", what, got)
		return got
	}
	inRange := func(lo, hi uint16) func(netip.AddrPort) bool {
		return func(a netip.AddrPort) bool { return a.Port() >= lo && a.Port() <= hi }
	}

	p1 := h1.StartHelper(ctx, HelperUDPStream, "-local", "4500", echo)
	first := waitMapped(p1, "cone NAT initial mapping", func(netip.AddrPort) bool { return true })
	require.Equal(t, cone.IP(), first.Addr(), "the server sees the NAT's WAN IP")
	require.NoError(t, cone.SetPortRange(20000, 20999))
	waitMapped(p1, "cone NAT mapping after SetPortRange(20000, 20999)", inRange(20000, 20999))
	require.NoError(t, cone.SetPortRange(30000, 30999))
	waitMapped(p1, "cone NAT mapping after SetPortRange(30000, 30999)", inRange(30000, 30999))

	p2 := h2.StartHelper(ctx, HelperUDPStream, "-local", "4500", echo)
	before := waitMapped(p2, "symmetric NAT initial mapping", func(netip.AddrPort) bool { return true })
	require.NoError(t, sym.FlushConntrack())
	// A new random port; the same one again has probability ~1/64000.
	waitMapped(p2, "symmetric NAT mapping after FlushConntrack", func(a netip.AddrPort) bool { return a != before })
}

// TestFlushConntrackCone documents what a flush does to a cone NAT: the flow gets a new
// conntrack entry, but Linux prefers to give the original mapping again when it is free.
func TestFlushConntrackCone(t *testing.T) {
	t.Parallel()
	_, srv, nat, h1 := serverAndNAT(t, Cone)
	sc := listenUDP(t, srv, 5000)
	hc := listenUDP(t, h1, 4500)
	srvAddr := netip.AddrPortFrom(srv.IP(), 5000)

	udpSend(t, hc, srvAddr, "one")
	_, m1 := udpRecv(t, sc)
	require.NoError(t, nat.FlushConntrack())
	// After the flush the server's packet finds no mapping: dropped. h1's next packet makes a
	// new one; the server's reply to it then arrives (and nothing before it).
	udpSend(t, sc, m1, "lost")
	udpSend(t, hc, srvAddr, "two")
	msg, m2 := udpRecv(t, sc)
	require.Equal(t, "two", msg)
	udpSend(t, sc, m2, "reply")
	udpExpect(t, hc, "reply", srvAddr) // not "lost": the packet sent into the flushed mapping is dropped
	t.Logf("cone NAT mapping before flush %v, after %v", m1, m2)
	assert.EqualValues(t, 4500, m1.Port(), "Linux keeps the source port")
	assert.Equal(t, m1, m2, "Linux gives the same mapping again")
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
	_, from := udpRecv(t, sc)
	require.Equal(t, nat1.IP(), from.Addr(), "the server sees nat1")
	require.NoError(t, h.MoveTo(nat2.LAN()))
	require.True(t, nat2.LAN().Prefix().Contains(h.IP()), "moved host has %v, want an address in %v", h.IP(), nat2.LAN().Prefix())
	udpSend(t, hc, srvAddr, "from nat2")
	msg, from := udpRecv(t, sc)
	require.Equal(t, "from nat2", msg)
	require.Equal(t, nat2.IP(), from.Addr(), "the server sees nat2")
}

func labNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if !errors.Is(err, os.ErrNotExist) {
		require.NoError(t, err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	// Cross-check with ip netns list.
	list, err := exec.Command("ip", "netns", "list").CombinedOutput()
	require.NoError(t, err, "ip netns list: %s", list)
	n := 0
	for _, l := range strings.Split(string(list), "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	assert.Len(t, out, n, "namespaces with prefix %s in /run/netns and in ip netns list", prefix)
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
	require.Len(t, labNamespaces(t, lab.Prefix()), 3)
	require.NoError(t, lab.Close())
	assert.Empty(t, labNamespaces(t, lab.Prefix()), "namespaces left after Close")
	select {
	case <-p.Done():
	default:
		assert.Fail(t, "process still running after Close")
	}
	assert.NoError(t, lab.Close(), "second Close")
}

// TestNamesValidated: bad and duplicate names are refused.
func TestNamesValidated(t *testing.T) {
	t.Parallel()
	lab := New(t)
	for _, name := range []string{"", "Upper", "with-dash", "toolongname123", "inet", "1abc"} {
		_, err := lab.addHost(name, lab.PublicSegment(), "eth0", false)
		assert.Error(t, err, "name %q accepted", name)
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
	require.NoError(t, err)
	for _, mode := range []string{"panic", "kill"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(exe, "-test.run=^TestCrashChild$", "-test.v")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+mode)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			require.Error(t, cmd.Run(), "the crash child exited 0:\n%s", out.String())
			_, after, ok := strings.Cut(out.String(), "PREFIX=")
			require.True(t, ok, "the crash child printed no prefix:\n%s", out.String())
			prefix := strings.Fields(after)[0]
			left := labNamespaces(t, prefix)
			switch mode {
			case "panic":
				assert.Empty(t, left, "a panicking test left namespaces:\n%s", out.String())
			case "kill":
				require.Len(t, left, 3, "namespaces the killed child left, to sweep")
				require.NoError(t, Sweep())
				assert.Empty(t, labNamespaces(t, prefix), "after Sweep")
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
		assert.Equal(t, want, got, "ownerPID(%q)", name)
		assert.Equal(t, want != 0, ok, "ownerPID(%q)", name)
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
	require.True(t, outer.LAN().Prefix().Contains(inner.IP()), "inner NAT's WAN %v not on the outer LAN %v", inner.IP(), outer.LAN().Prefix())
	h := lab.AddHost("h", inner.LAN())
	sc, hc := listenUDP(t, srv, 5000), listenUDP(t, h, 4500)
	udpSend(t, hc, netip.AddrPortFrom(srv.IP(), 5000), "hi")
	msg, from := udpRecv(t, sc)
	require.Equal(t, "hi", msg)
	require.Equal(t, outer.IP(), from.Addr(), "the server sees the outer NAT")
}
