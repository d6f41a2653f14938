//go:build linux

package labtest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/internal/natlab"
)

// The relay cases (issue 5): nodes that cannot reach each other directly connect through the
// relay (examples/relay, a TURN server on the coord host that the coordinator hands out with
// credentials), the relay going away and coming back, and timing figures.

// wantRelayed checks that a peer is reached through the relay: Path "relayed" and a relayed
// candidate on at least one end (on the local end when localRelay).
func wantRelayed(p peerStatus, localRelay bool) error {
	anyType := is("host", "srflx", "prflx", "relay")
	if err := wantPath(p, "relayed", anyType, anyType); err != nil {
		return err
	}
	if p.LocalCandidate != "relay" && p.RemoteCandidate != "relay" {
		return fmt.Errorf("Path relayed but no relay candidate: local %q remote %q (Endpoint %q)",
			p.LocalCandidate, p.RemoteCandidate, p.Endpoint)
	}
	if localRelay && p.LocalCandidate != "relay" {
		return fmt.Errorf("local candidate %q, want relay (remote %q, Endpoint %q)",
			p.LocalCandidate, p.RemoteCandidate, p.Endpoint)
	}
	return nil
}

var relayCfg = worldConfig{TURN: true}

// Relay case 1: a host behind a symmetric NAT and one behind a cone NAT cannot hole-punch
// (the symmetric side's mapping toward the peer is not the one STUN saw, and the cone side
// filters by address and port), so they connect through the relay. The median time from both
// nodes up to the first byte echoed over the relay is logged (case relay-sym-cone).
func TestRelaySymmetricToCone(t *testing.T) {
	runPair(t, pairCase{
		name: "relay-sym-cone",
		cfg:  relayCfg,
		topo: func(w *world) (*natlab.Host, *natlab.Host) {
			cone := w.addNAT("cone1", natlab.Cone, nat1Lo, nat1Hi)
			sym := w.addNAT("sym2", natlab.Symmetric, 0, 0)
			return w.lab.AddHost("ha", cone.LAN()), w.lab.AddHost("hb", sym.LAN())
		},
		check: func(w *world, st *nodeStatus, p peerStatus) error {
			if st.NAT != "symmetric" {
				return fmt.Errorf("own NAT %q, want symmetric", st.NAT)
			}
			return wantRelayed(p, false)
		},
	})
}

// Relay case 2: two hosts behind two symmetric NATs connect through the relay.
func TestRelaySymmetricToSymmetric(t *testing.T) {
	runPair(t, pairCase{
		name: "relay-sym-sym",
		cfg:  relayCfg,
		topo: func(w *world) (*natlab.Host, *natlab.Host) {
			sym1 := w.addNAT("sym1", natlab.Symmetric, 0, 0)
			sym2 := w.addNAT("sym2", natlab.Symmetric, 0, 0)
			return w.lab.AddHost("ha", sym1.LAN()), w.lab.AddHost("hb", sym2.LAN())
		},
		check: func(w *world, st *nodeStatus, p peerStatus) error {
			return wantRelayed(p, false)
		},
	})
}

// Relay case 3: a host behind a NAT that drops all outbound UDP (TCP passes) reaches a host
// behind a cone NAT through the relay over TCP (the turn:...?transport=tcp URL). Its own end
// of the path must be a relay candidate (it has no other way out), and its NAT's conntrack
// table must hold the TCP connection to the relay's port.
func TestRelayBlockedUDP(t *testing.T) {
	var blocked *natlab.NAT
	runPair(t, pairCase{
		name: "relay-blockudp-cone",
		cfg:  relayCfg,
		topo: func(w *world) (*natlab.Host, *natlab.Host) {
			cone := w.addNAT("cone1", natlab.Cone, nat1Lo, nat1Hi)
			blocked = w.addNAT("noudp2", natlab.BlockUDP, nat2Lo, nat2Hi)
			return w.lab.AddHost("ha", cone.LAN()), w.lab.AddHost("hb", blocked.LAN())
		},
		check: func(w *world, st *nodeStatus, p peerStatus) error {
			if err := wantRelayed(p, true); err != nil {
				return err
			}
			// The allocation went over TCP: the blocked NAT forwarded a TCP flow to the
			// relay's TCP port, answered both ways (ASSURED), (its UDP is dropped, so no UDP
			// flow can carry it). The status node has exited by now, so its flow may be
			// closing: any state counts.
			relayTCP := fmt.Sprintf("dst=%s sport=", w.coord.IP())
			ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
			defer cancel()
			out, err := blocked.Router().Run(ctx, "cat", "/proc/net/nf_conntrack")
			if err != nil {
				return fmt.Errorf("read conntrack of %s: %v", blocked.Name(), err)
			}
			var tcp []string
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, " tcp ") && strings.Contains(l, relayTCP) &&
					strings.Contains(l, fmt.Sprintf("dport=%d ", stunPort1)) && strings.Contains(l, "[ASSURED]") {
					tcp = append(tcp, l)
				}
			}
			if len(tcp) == 0 {
				return fmt.Errorf("no TCP flow answered by the relay %v:%d in %s's conntrack table:\n%s",
					w.coord.IP(), stunPort1, blocked.Name(), out)
			}
			w.t.Logf("TCP flows to the relay through %s:\n%s", blocked.Name(), strings.Join(tcp, "\n"))
			return nil
		},
	})
}

// Relay case 3b: a host behind a cone NAT whose firewall lets UDP out to public hosts only
// (STUN and the relay answer, so it finds its NAT's mapping and publishes it) but drops UDP
// toward other NATs, where its peers are: no direct pair can work although nothing hints at it
// (both sides report cone NATs), and the nodes connect through the relay. Both nodes up → first
// byte is logged (case relay-peerudp-cone): ICE must fall back to the relay without waiting to
// fail.
func TestRelayPeerUDPBlocked(t *testing.T) {
	runPair(t, pairCase{
		name: "relay-peerudp-cone",
		cfg:  relayCfg,
		topo: func(w *world) (*natlab.Host, *natlab.Host) {
			cone := w.addNAT("cone1", natlab.Cone, nat1Lo, nat1Hi)
			fw := w.addNAT("fw2", natlab.BlockPeerUDP, nat2Lo, nat2Hi)
			return w.lab.AddHost("ha", cone.LAN()), w.lab.AddHost("hb", fw.LAN())
		},
		check: func(w *world, st *nodeStatus, p peerStatus) error {
			if st.NAT != "cone" {
				return fmt.Errorf("own NAT %q, want cone (STUN passes the firewall)", st.NAT)
			}
			return wantRelayed(p, false)
		},
	})
}

// iceLog finds the first line of n's -v log after since that has msg and is about peer (a
// device ID), without waiting.
func iceLog(n *node, since time.Time, msg, peer string) (timedLine, bool) {
	n.lines.mu.Lock()
	defer n.lines.mu.Unlock()
	for _, l := range n.lines.lines {
		if l.at.After(since) && strings.Contains(l.text, `msg="`+msg+`"`) && strings.Contains(l.text, "peer="+peer) {
			return l, true
		}
	}
	return timedLine{}, false
}

// waitICELog waits up to within for such a line; it fails the test (without stopping it)
// when none comes.
func waitICELog(t *testing.T, n *node, since time.Time, msg, peer string, within time.Duration) (timedLine, bool) {
	t.Helper()
	found := func() bool { _, ok := iceLog(n, since, msg, peer); return ok }
	if !assert.Eventually(t, found, within, 100*time.Millisecond, "no %q line for peer %s in %s's log", msg, peer, n.name) {
		return timedLine{}, false
	}
	return iceLog(n, since, msg, peer)
}

// relayRecoveryDeadline bounds how long the relay-killed case waits for the relayed stream to
// flow again once the relay is back: ICE restarts with a backoff capped at 30 s, and then the
// stream's TCP resends only when its backed-off retransmission timer fires.
const relayRecoveryDeadline = 180 * time.Second

// Relay case 4: a direct pair (cone to cone) and a relayed pair (symmetric to symmetric) both
// stream lines; the relay is killed (SIGKILL) mid-transfer. The direct pair must keep flowing;
// the relayed one must stop, its node must report the path lost, and a fresh node there must
// see no path. The relay is then started again on the same addresses and the relayed stream
// must recover; how long that took is logged, not asserted.
func TestRelayKilled(t *testing.T) {
	w := newWorld(t, relayCfg)
	cone1 := w.addNAT("cone1", natlab.Cone, nat1Lo, nat1Hi)
	cone2 := w.addNAT("cone2", natlab.Cone, nat2Lo, nat2Hi)
	sym3 := w.addNAT("sym3", natlab.Symmetric, 0, 0)
	sym4 := w.addNAT("sym4", natlab.Symmetric, 0, 0)
	hca, hcb := w.lab.AddHost("hca", cone1.LAN()), w.lab.AddHost("hcb", cone2.LAN())
	hsa, hsb := w.lab.AddHost("hsa", sym3.LAN()), w.lab.AddHost("hsb", sym4.LAN())
	w.listener(hca, "ca")
	w.listener(hsa, "sa")
	dc := w.dialer(hcb, "cb", fmt.Sprintf("ca:%d", echoPort))
	ds := w.dialer(hsb, "sb", fmt.Sprintf("sa:%d", echoPort))
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	direct, relayed := startStream(ctx, dc), startStream(ctx, ds)
	for _, s := range []*lineStream{direct, relayed} {
		_, err := s.flowing(w.ctx, 60*time.Second)
		require.NoError(t, err, "stream of %s: no data before the relay is killed", s.d.name)
	}

	// The paths, from fresh nodes beside the dialers (all four stream nodes reachable).
	var saID string
	p := w.status(hcb, "cstatus", 4, 40*time.Second).peer(t, "ca")
	assert.NoError(t, wantPath(p, "direct", is("host", "srflx", "prflx"), is("host", "srflx", "prflx")), "path from hcb to ca before the kill")
	p = w.status(hsb, "sstatus", 4, 40*time.Second).peer(t, "sa")
	saID = p.DeviceID
	assert.NoError(t, wantRelayed(p, false), "path from hsb to sa before the kill")
	// The streaming node sb itself selected a relayed pair toward sa.
	if l, ok := iceLog(ds, time.Time{}, "ICE path selected", saID); assert.True(t, ok, "sb's log has no \"ICE path selected\" for sa (%s)", saID) {
		assert.Contains(t, l.text, "relay", "sb's path to sa is not relayed")
	}
	if t.Failed() {
		t.FailNow()
	}

	// Kill the relay while both streams flow.
	for _, s := range []*lineStream{direct, relayed} {
		_, err := s.flowing(w.ctx, 30*time.Second)
		require.NoError(t, err, "stream of %s: not flowing right before the kill", s.d.name)
	}
	killed := time.Now()
	require.NoError(t, w.relay.Signal(syscall.SIGKILL))
	<-w.relay.Done()
	// Lines sent before the relay process was gone may still have passed through it.
	seqAtKill := relayed.lastSent.Load()
	t.Logf("relay killed at seq %d of the relayed stream", seqAtKill)

	// The relayed node reports the path lost.
	lost, ok := waitICELog(t, ds, killed, "ICE path lost", saID, 45*time.Second)
	if ok {
		t.Logf("sb reported the path to sa lost %v after the kill: %s", lost.at.Sub(killed).Round(time.Millisecond), lost.text)
	}
	// The direct pair keeps flowing.
	_, err := direct.flowing(w.ctx, 15*time.Second)
	assert.NoError(t, err, "direct stream cb->ca stopped after the relay was killed")
	// A fresh node beside sb sees no path to sa (without the relay only sb, on its own host,
	// is reachable).
	r := w.status(hsb, "sstatus2", 4, 15*time.Second)
	assert.Error(t, r.err, "status -wait 4 on hsb succeeded with the relay dead")
	if r.err != nil {
		p = r.peer(t, "sa")
		assert.False(t, p.Path != "none" && (p.LocalCandidate == "relay" || p.RemoteCandidate == "relay"),
			"with the relay dead, peer sa has Path %q local %q remote %q, want no relayed path", p.Path, p.LocalCandidate, p.RemoteCandidate)
		t.Logf("with the relay dead, a fresh node on hsb has Path %q to sa, traversal %q", p.Path, p.Traversal.String())
	}
	// Still flowing directly, well after the kill; and nothing sent after the kill came back
	// over the dead relay.
	_, err = direct.flowing(w.ctx, 15*time.Second)
	assert.NoError(t, err, "direct stream cb->ca stopped while the relay was dead")
	if l, err := relayed.echoAfter(canceled(), seqAtKill); err == nil {
		assert.Fail(t, "an echo over the dead relay", "relayed stream sb->sa echoed %q, sent after the relay was killed", l.text)
	}

	// Start the relay again on the same addresses.
	restarted := time.Now()
	seqAtRestart := relayed.lastSent.Load()
	// The same addresses and secret; the counters every 5 s show what the relay forwards.
	w.relay = w.coord.Start(w.ctx, bin(t, "relay"), append(w.relayArgs, "-stats-interval", "5s")...)
	w.waitSTUN(w.relay, w.relayAddrs...)
	t.Logf("relay restarted after %v down (relayed stream at seq %d)", restarted.Sub(killed).Round(time.Millisecond), seqAtRestart)
	wctx, wcancel := context.WithTimeout(w.ctx, relayRecoveryDeadline)
	l, err := relayed.echoAfter(wctx, seqAtRestart)
	wcancel()
	path := "not seen in sb's log"
	if pl, ok := iceLog(ds, restarted, "ICE path selected", saID); ok {
		path = pl.at.Sub(restarted).Round(time.Millisecond).String()
	}
	if !assert.NoError(t, err, "relayed stream sb->sa did not recover within %v of the relay's restart (path re-selected after %s)",
		relayRecoveryDeadline, path) {
		// Is it the relayed path or the old stream? A fresh dialer beside sb, over the relay.
		fresh := w.dialer(hsb, "sbfresh", fmt.Sprintf("sa:%d", echoPort))
		fctx, fcancel := context.WithTimeout(w.ctx, 45*time.Second)
		_, ferr := fresh.upTime(fctx)
		if ferr == nil {
			if ferr = fresh.send("labtest-sbfresh"); ferr == nil {
				_, ferr = fresh.echo(fctx, "labtest-sbfresh")
			}
		}
		fcancel()
		require.NoError(t, ferr, "no relayed path after the restart: a fresh dialer on hsb does not reach sa either")
		require.Fail(t, "the stream does not resume", "a fresh dialer on hsb reaches sa over the restarted relay: the relayed path works, "+
			"the TCP stream that was open across the outage does not resume")
	}
	lostAfter := "not seen"
	if !lost.at.IsZero() {
		lostAfter = lost.at.Sub(killed).Round(time.Millisecond).String()
	}
	t.Logf("LAB-TIMING case=relay-killed path-lost-after-kill=%s down=%v recovery-after-restart=%v path-reselected-after-restart=%s (first echo: %s)",
		lostAfter, restarted.Sub(killed).Round(time.Millisecond), l.at.Sub(restarted).Round(time.Millisecond), path, l.text)
	_, err = direct.flowing(w.ctx, 15*time.Second)
	assert.NoError(t, err, "direct stream cb->ca stopped after the relay came back")
	p = w.status(hsb, "sstatus3", 4, 40*time.Second).peer(t, "sa")
	assert.NoError(t, wantRelayed(p, false), "path from hsb to sa after the relay came back")
}

// throughputSize is how much each transfer of TestRelayThroughput pushes.
const throughputSize = 32 << 20

// sink counts what a "nxcat listen" (without -echo) writes to stdout, which goes to a pipe the
// test reads (not into the test log), and when each read arrived.
type sink struct {
	mu    sync.Mutex
	total int64
	reads []sinkRead
	err   error // reading ended
}

type sinkRead struct {
	total int64 // after this read
	n     int64
	at    time.Time
}

func (s *sink) run(r io.Reader) {
	buf := make([]byte, 256<<10)
	for {
		n, err := r.Read(buf)
		now := time.Now()
		s.mu.Lock()
		if n > 0 {
			s.total += int64(n)
			s.reads = append(s.reads, sinkRead{s.total, int64(n), now})
		}
		if err != nil {
			s.err = err
		}
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (s *sink) count() (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total, s.err
}

// span returns the reads that took the count from above base to at least end: when the first
// and the last arrived and how many bytes the first carried.
func (s *sink) span(base, end int64) (first, last sinkRead, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.reads {
		if r.total > base && first.at.IsZero() {
			first = r
		}
		if r.total >= end {
			return first, r, !first.at.IsZero()
		}
	}
	return first, last, false
}

// startSink starts "nxcat listen PORT" on h with its stdout on a pipe to a sink.
func (w *world) startSink(h *natlab.Host, hostname string, port int) (*node, *sink) {
	w.t.Helper()
	pr, pw, err := os.Pipe()
	require.NoError(w.t, err)
	args := []string{"-control", w.url, "-authkey", w.regKey, "-hostname", hostname, "-timeout", upTimeout.String(), "-v",
		"listen", fmt.Sprint(port)}
	// natlab captures stdout and stderr line by line (and logs every line): the data goes to
	// fd 3 instead, the pipe.
	cmd := h.Command(w.ctx, "sh", append([]string{"-c", `exec "$0" "$@" >&3`, bin(w.t, "nxcat")}, args...)...)
	cmd.ExtraFiles = []*os.File{pw}
	n := &node{name: hostname, host: h}
	n.p = h.StartCmd(cmd)
	pw.Close()
	n.lines = watch(w.ctx, n.p)
	s := &sink{}
	go s.run(pr)
	w.t.Cleanup(func() {
		w.dumpOnce.Do(w.dump)
		n.p.Stop()
		pr.Close()
	})
	ctx, cancel := context.WithTimeout(w.ctx, upTimeout+5*time.Second)
	defer cancel()
	_, err = n.lines.wait(ctx, func(s string) bool { return strings.Contains(s, "nxcat: listening on") })
	require.NoError(w.t, err, "sink %s", hostname)
	return n, s
}

// deviceID reads a node's device ID from its "node up" log line.
func (n *node) deviceID(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, upTimeout+5*time.Second)
	defer cancel()
	l, err := n.lines.wait(ctx, func(s string) bool { return strings.Contains(s, `msg="node up"`) })
	if err != nil {
		return "", err
	}
	for _, f := range strings.Fields(l.text) {
		if v, ok := strings.CutPrefix(f, "device="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no device= in %q", l.text)
}

// transfer runs "nxcat dial" as a fresh node on h toward the sink, writes size bytes to its
// stdin and waits until the sink has them all and the dialer has exited. It returns the
// stream rate (first to last byte at the sink), the wall time (first write to last byte, with
// the connection's setup) and the dialer's last "ICE path selected" log line toward the sink.
func transfer(w *world, h *natlab.Host, hostname, target, sinkID string, sk *sink, size int64) (mbps float64, wall time.Duration, path string, err error) {
	base, _ := sk.count()
	d := w.dialer(h, hostname, target)
	block := make([]byte, 1<<20)
	rng := rand.New(rand.NewChaCha8([32]byte{1, 2, 3}))
	for i := range block {
		block[i] = byte(rng.Uint32())
	}
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		var err error
		for sent := int64(0); sent < size && err == nil; sent += int64(len(block)) {
			_, err = d.stdin.Write(block[:min(int64(len(block)), size-sent)])
		}
		d.stdin.Close()
		werr <- err
	}()
	// Until the sink has everything, or can get no more.
	require.Eventually(w.t, func() bool {
		n, rerr := sk.count()
		return n >= base+size || rerr != nil || exited(d.p)
	}, 180*time.Second, 100*time.Millisecond, "%s: the sink did not get %d bytes", hostname, size)
	if n, rerr := sk.count(); n < base+size {
		if rerr != nil {
			return 0, 0, "", fmt.Errorf("sink output ended with %d of %d bytes: %w", n-base, size, rerr)
		}
		return 0, 0, "", fmt.Errorf("dialer %s exited with %d of %d bytes at the sink: %w", hostname, n-base, size, d.p.Wait())
	}
	first, last, ok := sk.span(base, base+size)
	if !ok {
		return 0, 0, "", fmt.Errorf("sink reads do not span the transfer")
	}
	if err := <-werr; err != nil {
		return 0, 0, "", fmt.Errorf("write to dialer %s: %w", hostname, err)
	}
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	defer cancel()
	select {
	case <-d.p.Done():
		if err := d.p.Wait(); err != nil {
			return 0, 0, "", fmt.Errorf("dialer %s: %w", hostname, firstLine(err))
		}
	case <-ctx.Done():
		return 0, 0, "", fmt.Errorf("dialer %s did not exit after the sink got everything", hostname)
	}
	for _, l := range func() []timedLine {
		d.lines.mu.Lock()
		defer d.lines.mu.Unlock()
		return append([]timedLine(nil), d.lines.lines...)
	}() {
		if !l.at.After(last.at) && strings.Contains(l.text, `msg="ICE path selected"`) && strings.Contains(l.text, "peer="+sinkID) {
			path = l.text
		}
	}
	streamed := float64(size - first.n)
	return streamed / last.at.Sub(first.at).Seconds() / 1e6, last.at.Sub(start), path, nil
}

// Relay figure: throughput through the relay beside a direct path in the same run. A sink
// ("nxcat listen", output counted and discarded by the test) runs behind a cone NAT; a fresh
// dialer behind another cone NAT (direct) and then one behind a symmetric NAT (relayed) each
// push 32 MiB to it, one after the other. Logged, not asserted.
func TestRelayThroughput(t *testing.T) {
	w := newWorld(t, relayCfg)
	cone1 := w.addNAT("cone1", natlab.Cone, nat1Lo, nat1Hi)
	cone2 := w.addNAT("cone2", natlab.Cone, nat2Lo, nat2Hi)
	sym3 := w.addNAT("sym3", natlab.Symmetric, 0, 0)
	hs := w.lab.AddHost("hsink", cone1.LAN())
	hd, hr := w.lab.AddHost("hdirect", cone2.LAN()), w.lab.AddHost("hrelayed", sym3.LAN())
	const sinkPort = 7001
	sn, sk := w.startSink(hs, "sink", sinkPort)
	sinkID, err := sn.deviceID(w.ctx)
	require.NoError(t, err, "sink")
	target := fmt.Sprintf("sink:%d", sinkPort)
	for _, tr := range []struct {
		host    *natlab.Host
		name    string
		relayed bool
	}{{hd, "direct", false}, {hr, "relayed", true}} {
		mbps, wall, path, err := transfer(w, tr.host, "push-"+tr.name, target, sinkID, sk, throughputSize)
		require.NoError(t, err, "%s transfer", tr.name)
		if assert.NotEmpty(t, path, "%s transfer: the dialer logged no \"ICE path selected\" toward the sink", tr.name) {
			assert.Equal(t, tr.relayed, strings.Contains(path, "relay"), "%s transfer went over the wrong path type: %s", tr.name, path)
		}
		t.Logf("LAB-TIMING case=relay-throughput path=%s bytes=%d stream=%.1fMB/s wall=%v (from the first write, with connection setup)",
			tr.name, throughputSize, mbps, wall.Round(time.Millisecond))
	}
}
