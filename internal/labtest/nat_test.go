//go:build linux

package labtest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/internal/natlab"
)

// Masquerade port ranges: below Linux's ephemeral range (32768-60999) that nxcat's socket
// binds in, so a mapped port never equals the local one.
const (
	nat1Lo, nat1Hi = 21000, 21999
	nat2Lo, nat2Hi = 22000, 22999
)

// runsEnv overrides how many timed runs the pair cases make (default 5).
const runsEnv = "LABTEST_RUNS"

func timedRuns(t *testing.T) int {
	if s := os.Getenv(runsEnv); s != "" {
		n, err := strconv.Atoi(s)
		require.True(t, err == nil && n >= 1, "%s=%q: want a positive number", runsEnv, s)
		return n
	}
	return 5
}

// pairCase is a listener node "a" on one host and dialing/status nodes on another, with an
// expectation about the path the dialing side sees toward "a". The relay cases (issue 5) are
// more rows of this kind: a topology, worldConfig{TURN: true} and a check that
// wants Path "relayed".
type pairCase struct {
	name string // for LAB-TIMING lines
	cfg  worldConfig
	// topo builds the NATs and hosts: the listener's host ha and the dialer's host hb.
	topo func(w *world) (ha, hb *natlab.Host)
	// check judges hb's status (a fresh node's, once it has a path to "a").
	check func(w *world, st *nodeStatus, a peerStatus) error
}

// runPair runs a pair case:
//  1. "nxcat listen -echo 7000" as node "a" on ha;
//  2. "nxcat status -o json -wait 1" as node "bstatus" on hb: the path type toward "a";
//  3. several times: "nxcat dial a:7000" as a fresh node on hb sends a line and waits for the
//     echo; the time from both nodes up ("node up" log lines) to the echo is the run's time to
//     first byte. The median is logged as a LAB-TIMING line.
func runPair(t *testing.T, pc pairCase) {
	w := newWorld(t, pc.cfg)
	ha, hb := pc.topo(w)
	a := w.listener(ha, "a")
	upA, err := a.upTime(w.ctx)
	require.NoError(t, err, "listener a")

	// The path, from a fresh node on hb.
	// A failed check does not stop the case: the data runs below are measured anyway.
	r := w.status(hb, "bstatus", 1, 30*time.Second)
	if assert.NoError(t, r.err, "status on %s: no path to a", hb.Name()) && assert.NotNil(t, r.st, "status on %s printed nothing", hb.Name()) {
		p, ok := r.st.peer("a")
		if assert.True(t, ok, "status on %s has no peer a", hb.Name()) {
			assert.NoError(t, pc.check(w, r.st, p), "path from %s to a", hb.Name())
		}
	}

	// Data, and the time from both nodes up to the first byte.
	var ttfb []time.Duration
	for i := 1; i <= timedRuns(t); i++ {
		d, err := dialEcho(w, hb, fmt.Sprintf("b%d", i), upA)
		require.NoError(t, err, "run %d", i)
		t.Logf("LAB-TIMING case=%s run=%d up-to-first-byte=%v", pc.name, i, d.Round(time.Millisecond))
		ttfb = append(ttfb, d)
	}
	all := make([]string, len(ttfb))
	for i, d := range ttfb {
		all[i] = d.Round(time.Millisecond).String()
	}
	t.Logf("LAB-TIMING case=%s median=%v runs=%d all=[%s]", pc.name, median(ttfb).Round(time.Millisecond),
		len(ttfb), strings.Join(all, " "))
}

// dialEcho starts a dialer node on h, sends one line to a:7000, waits for its echo and for the
// dialer to exit cleanly; it returns the time from both nodes up (the later of upA and the
// dialer's "node up") to the echo.
func dialEcho(w *world, h *natlab.Host, hostname string, upA time.Time) (time.Duration, error) {
	d := w.dialer(h, hostname, fmt.Sprintf("a:%d", echoPort))
	line := "labtest-" + hostname
	if err := d.send(line); err != nil {
		return 0, fmt.Errorf("dialer %s: write stdin: %w", hostname, err)
	}
	upB, err := d.upTime(w.ctx)
	if err != nil {
		return 0, fmt.Errorf("dialer %s: %w", hostname, err)
	}
	ctx, cancel := context.WithTimeout(w.ctx, 45*time.Second)
	defer cancel()
	at, err := d.echo(ctx, line)
	if err != nil {
		return 0, fmt.Errorf("dialer %s: no echo of %q from a: %w", hostname, line, err)
	}
	// Closing stdin ends the connection; the ephemeral node deregisters and exits 0.
	d.stdin.Close()
	select {
	case <-d.p.Done():
		if err := d.p.Wait(); err != nil {
			return 0, fmt.Errorf("dialer %s: %w", hostname, firstLine(err))
		}
	case <-ctx.Done():
		return 0, fmt.Errorf("dialer %s did not exit after its stdin closed", hostname)
	}
	both := upA
	if upB.After(both) {
		both = upB
	}
	return at.Sub(both), nil
}

// wantPath checks a peer's path type and candidate types.
func wantPath(p peerStatus, path string, local, remote func(string) bool) error {
	var errs []string
	if p.Path != path {
		errs = append(errs, fmt.Sprintf("Path %q, want %q", p.Path, path))
	}
	if !local(p.LocalCandidate) || !remote(p.RemoteCandidate) {
		errs = append(errs, fmt.Sprintf("candidates local %q remote %q", p.LocalCandidate, p.RemoteCandidate))
	}
	if p.PathSince.IsZero() {
		errs = append(errs, "PathSince is zero")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s (Endpoint %q)", strings.Join(errs, "; "), p.Endpoint)
	}
	return nil
}

func is(types ...string) func(string) bool {
	return func(s string) bool {
		for _, t := range types {
			if s == t {
				return true
			}
		}
		return false
	}
}

// endpointOn checks that the peer's endpoint is on addr with a port in lo-hi (lo 0: any).
func endpointOn(p peerStatus, addr netip.Addr, lo, hi uint16) error {
	ep, err := netip.ParseAddrPort(p.Endpoint)
	if err != nil {
		return fmt.Errorf("Endpoint %q: %v", p.Endpoint, err)
	}
	if ep.Addr() != addr || (lo != 0 && (ep.Port() < lo || ep.Port() > hi)) {
		want := addr.String()
		if lo != 0 {
			want += fmt.Sprintf(":%d-%d", lo, hi)
		}
		return fmt.Errorf("Endpoint %v, want %s", ep, want)
	}
	return nil
}

// Case 1: two hosts on one LAN behind one cone NAT reach each other over host candidates.
func TestSameLAN(t *testing.T) {
	var ha *natlab.Host
	runPair(t, pairCase{
		name: "same-lan",
		cfg:  worldConfig{},
		topo: func(w *world) (*natlab.Host, *natlab.Host) {
			nat := w.addNAT("nat1", natlab.Cone, nat1Lo, nat1Hi)
			ha = w.lab.AddHost("ha", nat.LAN())
			return ha, w.lab.AddHost("hb", nat.LAN())
		},
		check: func(w *world, st *nodeStatus, p peerStatus) error {
			if err := wantPath(p, "direct", is("host"), is("host")); err != nil {
				return err
			}
			return endpointOn(p, ha.IP(), 0, 0)
		},
	})
}

// Case 2: two hosts behind two different cone NATs connect directly, hole-punched at the
// server-reflexive (or peer-reflexive) addresses STUN and ICE found.
func TestConeToCone(t *testing.T) {
	var nat1, nat2 *natlab.NAT
	runPair(t, pairCase{
		name: "cone-cone",
		cfg:  worldConfig{},
		topo: func(w *world) (*natlab.Host, *natlab.Host) {
			nat1 = w.addNAT("nat1", natlab.Cone, nat1Lo, nat1Hi)
			nat2 = w.addNAT("nat2", natlab.Cone, nat2Lo, nat2Hi)
			return w.lab.AddHost("ha", nat1.LAN()), w.lab.AddHost("hb", nat2.LAN())
		},
		check: func(w *world, st *nodeStatus, p peerStatus) error {
			var errs []string
			if err := wantPath(p, "direct", is("host", "srflx", "prflx"), is("host", "srflx", "prflx")); err != nil {
				errs = append(errs, err.Error())
			} else if !is("srflx", "prflx")(p.LocalCandidate) && !is("srflx", "prflx")(p.RemoteCandidate) {
				errs = append(errs, fmt.Sprintf("candidates local %q remote %q: want srflx or prflx on at least one side",
					p.LocalCandidate, p.RemoteCandidate))
			}
			// a is behind nat1: its address as hb reaches it is nat1's, from nat1's port range.
			if err := endpointOn(p, nat1.IP(), nat1Lo, nat1Hi); err != nil {
				errs = append(errs, err.Error())
			}
			if st.NAT != "cone" {
				errs = append(errs, fmt.Sprintf("own NAT %q, want cone", st.NAT))
			}
			if ra, err := netip.ParseAddrPort(st.ReflexiveAddr); err != nil || ra.Addr() != nat2.IP() ||
				ra.Port() < nat2Lo || ra.Port() > nat2Hi {
				errs = append(errs, fmt.Sprintf("own ReflexiveAddr %q, want %v:%d-%d", st.ReflexiveAddr, nat2.IP(), nat2Lo, nat2Hi))
			}
			if len(errs) > 0 {
				return fmt.Errorf("%s", strings.Join(errs, "; "))
			}
			return nil
		},
	})
}

// dataRecoveryDeadline bounds how long case 3 waits for the stream to flow again.
const dataRecoveryDeadline = 150 * time.Second

// Case 3: while a TCP stream flows between hosts behind two cone NATs, their NATs lose the
// mappings WireGuard and ICE use, four times: the dialer's NAT flushes its conntrack table (as a
// router reboot would: the next outbound packet gets a fresh mapping, and the peer's packets
// are dropped until then), then each NAT in turn changes its masquerade port range (which
// flushes the table too, so every mapping moves to another port), then the listener's NAT
// flushes its table. Traffic must recover each time; how long it took is logged.
func TestConeMappingChange(t *testing.T) {
	w := newWorld(t, worldConfig{})
	nat1 := w.addNAT("nat1", natlab.Cone, nat1Lo, nat1Hi)
	nat2 := w.addNAT("nat2", natlab.Cone, nat2Lo, nat2Hi)
	ha, hb := w.lab.AddHost("ha", nat1.LAN()), w.lab.AddHost("hb", nat2.LAN())
	w.listener(ha, "a")
	d := w.dialer(hb, "b", fmt.Sprintf("a:%d", echoPort))

	// A line every 100ms; the echo stream proves data flows. TCP keeps order, so the echo of
	// a line sent after a change proves the path works after it.
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	stream := startStream(ctx, d)
	_, err := stream.flowing(w.ctx, 60*time.Second)
	require.NoError(t, err, "no data from a before any change")

	for i, ch := range []struct {
		nat    *natlab.NAT
		side   string
		lo, hi uint16 // 0, 0: flush the conntrack table only
	}{
		{nat2, "dialer", 0, 0},
		{nat2, "dialer", 23000, 23999},
		{nat1, "listener", 24000, 24999},
		{nat1, "listener", 0, 0},
	} {
		what := fmt.Sprintf("ports %d-%d", ch.lo, ch.hi)
		if ch.lo == 0 {
			what = "conntrack flush"
		}
		// Flowing right now?
		_, err := stream.flowing(w.ctx, 30*time.Second)
		require.NoError(t, err, "change %d: data not flowing before it", i+1)
		changed := time.Now()
		change := ch.nat.FlushConntrack
		if ch.lo != 0 {
			change = func() error { return ch.nat.SetPortRange(ch.lo, ch.hi) }
		}
		require.NoError(t, change())
		// Lines sent from now on went out after the mapping changed.
		before := stream.lastSent.Load()
		// The deadline is generous: after the path is back, the stream's TCP (gVisor netstack)
		// resends only when its exponentially backed-off retransmission timer fires.
		wctx, wcancel := context.WithTimeout(w.ctx, dataRecoveryDeadline)
		l, err := stream.echoAfter(wctx, before)
		wcancel()
		logConntrack(t, w, ch.nat)
		// When did the dialer's node select a path again? (From its -v log: informational.)
		path := "not seen in the dialer's log"
		if pl, ok := d.lines.firstAfter(changed, "ICE path selected"); ok {
			path = pl.at.Sub(changed).Round(time.Millisecond).String()
		}
		require.NoError(t, err, "change %d (%s's NAT %s, %s): no data within %v (path re-selected after %s)",
			i+1, ch.side, ch.nat.Name(), what, dataRecoveryDeadline, path)
		t.Logf("LAB-TIMING case=mapping-change nat=%s side=%s change=%q recovery=%v path-reselected=%s (first echo sent after the change: %s)",
			ch.nat.Name(), ch.side, what, l.at.Sub(changed).Round(time.Millisecond), path, l.text)
	}

	// A fresh node behind the changed NAT sees its new mapping and still gets a direct path.
	// It has two peers, a and the dialer b on its own host; waiting for one would return as
	// soon as b (host candidates on the same LAN) connects, before a's path is there.
	r := w.status(hb, "bstatus", 2, 30*time.Second)
	require.NoError(t, r.err, "status on hb after the changes")
	p := r.peer(t, "a")
	assert.NoError(t, wantPath(p, "direct", is("host", "srflx", "prflx"), is("host", "srflx", "prflx")), "path from hb to a after the changes")
	assert.NoError(t, endpointOn(p, nat1.IP(), 24000, 24999), "path from hb to a after the changes")
}

// logConntrack logs the UDP entries of a NAT's conntrack table (the mappings in use).
func logConntrack(t *testing.T, w *world, nat *natlab.NAT) {
	ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
	defer cancel()
	out, err := nat.Router().Run(ctx, "cat", "/proc/net/nf_conntrack")
	var udp []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "udp") {
			udp = append(udp, l)
		}
	}
	t.Logf("conntrack UDP entries on %s (%v):\n%s", nat.Name(), errOrEmpty(err), strings.Join(udp, "\n"))
}

// Case 4: nodes behind symmetric NATs report so; with no relay a pair of them cannot connect
// and ends with no path (issue 5 turns this into a relayed path).
func TestSymmetricNoRelay(t *testing.T) {
	w := newWorld(t, worldConfig{})
	sym1 := w.addNAT("sym1", natlab.Symmetric, 0, 0)
	sym2 := w.addNAT("sym2", natlab.Symmetric, 0, 0)
	ha, hb := w.lab.AddHost("ha", sym1.LAN()), w.lab.AddHost("hb", sym2.LAN())
	// A listener on each side. A status node on the same host reaches its local listener over
	// host candidates, so "status -wait" returns with a connected peer, and by then NAT-type
	// detection has had as long as an ICE exchange.
	w.listener(ha, "a")
	w.listener(hb, "b")

	for _, side := range []struct {
		h    *natlab.Host
		nat  *natlab.NAT
		name string
	}{{ha, sym1, "astatus"}, {hb, sym2, "bstatus"}} {
		r := w.status(side.h, side.name, 1, 30*time.Second)
		if !assert.NoError(t, r.err, "status on %s", side.h.Name()) || !assert.NotNil(t, r.st, "status on %s", side.h.Name()) {
			continue
		}
		assert.Equal(t, "symmetric", r.st.NAT, "NAT type on %s (behind symmetric NAT %s)", side.h.Name(), side.nat.Name())
		ra, err := netip.ParseAddrPort(r.st.ReflexiveAddr)
		assert.True(t, err == nil && ra.Addr() == side.nat.IP(), "status on %s: ReflexiveAddr %q, want one on %v",
			side.h.Name(), r.st.ReflexiveAddr, side.nat.IP())
	}

	// Data: a dialer on hb toward a gets nothing back while a status node on hb waits for all
	// three of its peers (b and bdial on its own host, a across the two symmetric NATs) and
	// must give up on a.
	d := w.dialer(hb, "bdial", fmt.Sprintf("a:%d", echoPort))
	require.NoError(t, d.send("labtest-sym"))
	_, err := d.upTime(w.ctx)
	require.NoError(t, err, "dialer bdial")
	r := w.status(hb, "bwait", 3, 40*time.Second)
	// The wait fails clearly: a unreachable, b and bdial (local) connected.
	if assert.Error(t, r.err, "symmetric to symmetric without a relay connected") {
		assert.Contains(t, r.output, "2 of 3 peers connected", "status -wait 3 on hb")
		t.Logf("no path from hb to a, as expected: %v", r.err)
	}
	// nxcat prints its status although the wait failed: which peer has no path, and why. The
	// reason stays until a session connects, through the retries after it.
	p := r.peer(t, "a")
	assert.Equal(t, "none", p.Path, "status on hb: peer a's path")
	assert.Contains(t, p.Traversal.Reason, "ICE failed: no candidate pair works", "status on hb: peer a's traversal")
	t.Logf("no path from hb to a: Traversal %q", p.Traversal.String())
	if l, err := d.lines.wait(canceled(), func(s string) bool { return s == "labtest-sym" }); err == nil {
		assert.Fail(t, "an echo without a path", "dialer on hb got an echo from a across two symmetric NATs without a relay: %q", l.text)
	}
}

// canceled is a context that is already done: wait then only looks at lines already there.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
