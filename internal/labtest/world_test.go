//go:build linux

package labtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/nexodus-sdk/nexodus"
	"io"
	"net/netip"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/internal/natlab"
)

// Lab-wide constants.
const (
	adminToken  = "labtest-admin-token-0123456789"
	relaySecret = "labtest-relay-secret-0123456789"
	echoPort    = 7000
	coordPort   = 8080
	stunPort1   = 3478
	stunPort2   = 3479
	// upTimeout bounds a node's registration (nxcat -timeout) and other one-off steps.
	upTimeout = 30 * time.Second
)

// worldConfig says what the public side of a lab provides beyond the coordinator and the STUN
// server (the relay's two ports), which every lab has.
type worldConfig struct {
	// TURN: the coordinator also hands out the relay as TURN server with credentials from the
	// shared secret, so nodes gather relayed candidates.
	TURN bool
}

// world is one lab with a running coordinator (and STUN/TURN server) on the public host
// "coord", a user "alice" and a reusable registration key for her personal organization.
// Hosts behind NATs run nxcat nodes registered with that key.
type world struct {
	t      *testing.T
	ctx    context.Context
	lab    *natlab.Lab
	pub    *natlab.Segment
	coord  *natlab.Host
	url    string   // coordinator URL as nodes use it
	stun   []string // STUN servers handed to nodes ("" when none)
	turn   []string // TURN URLs handed to nodes
	regKey string
	nats   []*natlab.NAT
	// relay is the running relay process and relayArgs its command line after the binary, so
	// that a case can kill it and start it again on the same addresses (see TestRelayKilled);
	// relayAddrs are its two UDP addresses.
	relay      *natlab.Process
	relayArgs  []string
	relayAddrs []string

	mu       sync.Mutex
	statuses []string // every status JSON taken, for the failure dump
	dump     func()   // diagnostics on failure; run once, by the first cleanup
	dumpOnce sync.Once
}

// newWorld builds the lab's public side. It skips t where the lab cannot run (natlab.New).
func newWorld(t *testing.T, cfg worldConfig) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	lab := natlab.New(t) // skips (or fails under NATLAB_REQUIRE=1) where the lab cannot run
	coordBin, nexctl := bin(t, "coordinator"), bin(t, "nexctl")
	w := &world{t: t, ctx: ctx, lab: lab, pub: lab.PublicSegment()}
	w.coord = lab.AddHost("coord", w.pub)
	ip := w.coord.IP()
	w.url = fmt.Sprintf("http://%s:%d", ip, coordPort)

	// The relay on the coordinator's host: the STUN server (two ports, so that NAT-type
	// detection can compare the mappings toward two destinations) and, for TURN cases, the relay.
	s1, s2 := netip.AddrPortFrom(ip, stunPort1).String(), netip.AddrPortFrom(ip, stunPort2).String()
	w.relayArgs = []string{"-listen", s1, "-listen2", s2, "-tcp-listen", s1,
		"-public-ip", ip.String(), "-secret", relaySecret, "-realm", "nexodus"}
	w.relayAddrs = []string{s1, s2}
	w.relay = w.coord.Start(ctx, bin(t, "relay"), w.relayArgs...)
	w.waitSTUN(w.relay, s1, s2)

	// STUN servers always, as a real deployment would have; TURN only where the case wants
	// relayed candidates.
	w.stun = []string{s1, s2}
	// Plain HTTP on the lab's public address (the coordinator serves it on loopback only unless
	// told): the lab has no certificates, and nothing but the lab's own hosts reaches it.
	args := []string{"-listen", fmt.Sprintf("%s:%d", ip, coordPort), "-insecure-http", "-db", t.TempDir() + "/nexodus.db",
		"-admin-token", adminToken, "-stun-servers", strings.Join(w.stun, ","),
		// The lab's network is private and has no certificates: plain HTTP off loopback.
		"-insecure-http"}
	if cfg.TURN {
		w.turn = []string{"turn:" + s1 + "?transport=udp", "turn:" + s1 + "?transport=tcp"}
		args = append(args, "-turn-servers", strings.Join(w.turn, ","), "-relay-secret", relaySecret)
	}
	cp := w.coord.Start(ctx, coordBin, args...)
	wctx, wcancel := context.WithTimeout(ctx, upTimeout)
	defer wcancel()
	_, err := cp.WaitFor(wctx, "coordinator listening")
	require.NoError(t, err)

	// Bootstrap: the admin creates alice and her API token; alice makes a reusable key.
	var u struct {
		PersonalOrganizationID string `json:"personal_organization_id"`
	}
	w.nexctl(nexctl, adminToken, &u, "user", "create", "alice")
	var tok struct {
		Secret string `json:"secret"`
	}
	w.nexctl(nexctl, adminToken, &tok, "user", "token", "alice")
	var key struct {
		Secret string `json:"secret"`
	}
	w.nexctl(nexctl, tok.Secret, &key, "regkey", "create", "--org", u.PersonalOrganizationID,
		"--description", "labtest")
	require.NotEmpty(t, tok.Secret, "bootstrap: the token's secret")
	require.NotEmpty(t, key.Secret, "bootstrap: the registration key's secret")
	w.regKey = key.Secret

	// On failure, add the coordinator's view and every status taken to natlab's dump (which
	// follows: ip addr, nft rulesets with counters and conntrack tables of every NAT). The
	// first node cleanup to run calls it, so the nodes and the coordinator are still up.
	w.dump = func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := w.coord.Command(ctx, nexctl, "--url", w.url, "--token", tok.Secret, "device", "list")
		out, err := cmd.CombinedOutput()
		t.Logf("labtest dump: coordinator devices:\n%s%v", out, errOrEmpty(err))
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, s := range w.statuses {
			t.Logf("labtest dump: status taken:\n%s", s)
		}
	}
	t.Cleanup(func() { w.dumpOnce.Do(w.dump) })
	return w
}

func errOr(err error, ok string) any {
	if err == nil {
		return ok
	}
	return err
}

func errOrEmpty(err error) any {
	if err == nil {
		return ""
	}
	return err
}

// waitSTUN waits until the STUN server p answers on each of servers, from the coord host.
func (w *world) waitSTUN(p *natlab.Process, servers ...string) {
	w.t.Helper()
	for _, s := range servers {
		require.EventuallyWithT(w.t, func(c *assert.CollectT) {
			if exited(p) {
				return // reported below, at once
			}
			_, err := stunBinding(w.coord, netip.MustParseAddrPort(s), 300*time.Millisecond)
			assert.NoError(c, err)
		}, upTimeout, 100*time.Millisecond, "STUN server %s does not answer", s)
		if exited(p) {
			require.FailNow(w.t, "the STUN server exited", "%v", p.Wait())
		}
	}
}

// exited reports whether p has exited.
func exited(p *natlab.Process) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

// nexctl runs nexctl -o json in the coord namespace and decodes its stdout into v.
func (w *world) nexctl(nexctl, token string, v any, args ...string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, upTimeout)
	defer cancel()
	cmd := w.coord.Command(ctx, nexctl, append([]string{"--url", w.url, "--token", token, "-o", "json"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(w.t, cmd.Run(), "nexctl %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), stdout.String(), stderr.String())
	require.NoError(w.t, json.Unmarshal(stdout.Bytes(), v), "nexctl %s: decode %q", strings.Join(args, " "), stdout.String())
}

// addNAT adds a NAT gateway on the public segment. A nonzero port range makes its mapped ports
// differ from the hosts' local ports (plain masquerade keeps the source port when it is free,
// which would make server-reflexive and host candidates share a port).
func (w *world) addNAT(name string, kind natlab.Kind, lo, hi uint16) *natlab.NAT {
	w.t.Helper()
	n := w.lab.AddNAT(name, w.pub, kind)
	if lo != 0 {
		require.NoError(w.t, n.SetPortRange(lo, hi))
	}
	w.nats = append(w.nats, n)
	return n
}

// nxcatCmd makes the command line of an nxcat node on h.
func (w *world) nxcatCmd(ctx context.Context, h *natlab.Host, hostname string, args ...string) *exec.Cmd {
	base := []string{"-control", w.url, "-authkey", w.regKey, "-hostname", hostname, "-timeout", upTimeout.String(), "-v"}
	return h.Command(ctx, bin(w.t, "nxcat"), append(base, args...)...)
}

// node is a long-running nxcat process (listen or dial).
type node struct {
	name  string
	host  *natlab.Host
	p     *natlab.Process
	lines *timedLines
	stdin io.WriteCloser // dial only
}

// start starts an nxcat node process; the test stops it at cleanup (before the coordinator).
func (w *world) start(h *natlab.Host, hostname string, withStdin bool, args ...string) *node {
	w.t.Helper()
	cmd := w.nxcatCmd(w.ctx, h, hostname, args...)
	n := &node{name: hostname, host: h}
	if withStdin {
		var err error
		n.stdin, err = cmd.StdinPipe()
		require.NoError(w.t, err)
	}
	n.p = h.StartCmd(cmd)
	n.lines = watch(w.ctx, n.p)
	w.t.Cleanup(func() {
		w.dumpOnce.Do(w.dump)
		if n.stdin != nil {
			n.stdin.Close()
		}
		n.p.Stop()
	})
	return n
}

// upTime waits for the node's "node up" log line and returns when it was printed.
func (n *node) upTime(ctx context.Context) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, upTimeout+5*time.Second)
	defer cancel()
	l, err := n.lines.wait(ctx, func(s string) bool { return strings.Contains(s, `msg="node up"`) })
	return l.at, err
}

// listener starts "nxcat listen -echo 7000" on h and waits until it listens.
func (w *world) listener(h *natlab.Host, hostname string) *node {
	w.t.Helper()
	n := w.start(h, hostname, false, "listen", "-echo", fmt.Sprint(echoPort))
	ctx, cancel := context.WithTimeout(w.ctx, upTimeout+5*time.Second)
	defer cancel()
	_, err := n.lines.wait(ctx, func(s string) bool { return strings.Contains(s, "nxcat: listening on") })
	require.NoError(w.t, err, "listener %s", hostname)
	return n
}

// dialer starts "nxcat dial TARGET" on h with a pipe for stdin; send lines with send and wait
// for their echo with echo.
func (w *world) dialer(h *natlab.Host, hostname, target string) *node {
	w.t.Helper()
	return w.start(h, hostname, true, "dial", target)
}

// send writes one line to a dialer's stdin.
func (n *node) send(line string) error {
	_, err := io.WriteString(n.stdin, line+"\n")
	return err
}

// echo waits for line on the dialer's stdout and returns when it arrived.
func (n *node) echo(ctx context.Context, line string) (time.Time, error) {
	l, err := n.lines.wait(ctx, func(s string) bool { return s == line })
	return l.at, err
}

// nodeStatus mirrors the JSON of nexodus.Status that "nxcat status -o json" prints (only the
// fields the tests read; decoded loosely so that the root package may grow).
type nodeStatus struct {
	DeviceID         string
	Hostname         string
	LocalAddr        string
	ControlConnected bool
	NAT              string
	ReflexiveAddr    string
	Peers            []peerStatus
}

type peerStatus struct {
	DeviceID        string
	Hostname        string
	Endpoints       []string
	Online          bool
	Path            string
	Endpoint        string
	LocalCandidate  string
	RemoteCandidate string
	Traversal       nexodus.Traversal
	PathSince       time.Time
	LastHandshake   time.Time
	RxBytes         uint64
	TxBytes         uint64
}

func (s *nodeStatus) peer(hostname string) (peerStatus, bool) {
	for _, p := range s.Peers {
		if p.Hostname == hostname {
			return p, true
		}
	}
	return peerStatus{}, false
}

// statusResult is one run of "nxcat status -o json".
type statusResult struct {
	st     *nodeStatus // nil when nothing was printed
	raw    string
	err    error // the exit error
	output string
}

// status runs "nxcat -hostname NAME status -o json [-wait N -wait-timeout D]" on h: a fresh node
// of its own that registers, waits for n peers to have a path (when n > 0) and prints its
// status.
func (w *world) status(h *natlab.Host, hostname string, n int, within time.Duration) statusResult {
	w.t.Helper()
	args := []string{"status", "-o", "json"}
	if n > 0 {
		args = append(args, "-wait", fmt.Sprint(n), "-wait-timeout", within.String())
	}
	ctx, cancel := context.WithTimeout(w.ctx, upTimeout+within+30*time.Second)
	defer cancel()
	p := h.StartCmd(w.nxcatCmd(ctx, h, hostname, args...))
	err := p.Wait()
	r := statusResult{raw: p.Stdout(), err: nxcatError(p, err), output: p.Output()}
	if strings.TrimSpace(r.raw) != "" {
		var st nodeStatus
		if derr := json.Unmarshal([]byte(r.raw), &st); derr != nil {
			r.err = errors.Join(r.err, fmt.Errorf("decode status JSON: %w", derr))
		} else {
			r.st = &st
		}
	}
	w.t.Logf("status of %s on %s (%v):\n%s", hostname, h.Name(), errOr(r.err, "exit 0"), r.raw)
	w.mu.Lock()
	w.statuses = append(w.statuses, fmt.Sprintf("%s on %s (%v):\n%s", hostname, h.Name(), errOr(r.err, "exit 0"), r.raw))
	w.mu.Unlock()
	return r
}

// peer returns the status's view of the peer hostname, failing the test when the status
// printed nothing or has no such peer.
func (r statusResult) peer(t *testing.T, hostname string) peerStatus {
	t.Helper()
	require.NotNil(t, r.st, "no status printed (%v)", r.err)
	p, ok := r.st.peer(hostname)
	require.True(t, ok, "the status has no peer %s", hostname)
	return p
}

// nxcatError turns a process's exit error into nxcat's own message ("nxcat: ..." on stderr),
// rather than natlab's, which repeats the command line.
func nxcatError(p *natlab.Process, err error) error {
	if err == nil {
		return nil
	}
	msg := ""
	for _, l := range strings.Split(p.Output(), "\n") {
		if strings.HasPrefix(l, "nxcat: ") {
			msg = l
		}
	}
	if msg == "" {
		return firstLine(err)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("%s (exit %d)", msg, ee.ExitCode())
	}
	return fmt.Errorf("%s (%v)", msg, firstLine(err))
}

// lineStream sends a numbered line every 100 ms to a dialer node (whose peer echoes), as in
// TestConeMappingChange; TCP keeps order, so the echo of a line proves the path carried data
// after that line was sent.
type lineStream struct {
	d        *node
	lastSent atomic.Int64
}

func startStream(ctx context.Context, d *node) *lineStream {
	s := &lineStream{d: d}
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for seq := int64(1); ; seq++ {
			if d.send(fmt.Sprintf("seq-%d", seq)) != nil {
				return
			}
			s.lastSent.Store(seq)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// echoAfter waits for the echo of a line numbered above seq.
func (s *lineStream) echoAfter(ctx context.Context, seq int64) (timedLine, error) {
	return s.d.lines.wait(ctx, func(l string) bool {
		n, err := strconv.ParseInt(strings.TrimPrefix(l, "seq-"), 10, 64)
		return strings.HasPrefix(l, "seq-") && err == nil && n > seq
	})
}

// flowing checks that a line sent from now on is echoed within d.
func (s *lineStream) flowing(ctx context.Context, d time.Duration) (timedLine, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return s.echoAfter(ctx, s.lastSent.Load())
}

// timedLines records when each output line of a process arrived.
type timedLines struct {
	mu     sync.Mutex
	lines  []timedLine
	notify chan struct{}
	ended  error // set when the process exited (or watching ended)
}

type timedLine struct {
	text string
	at   time.Time
}

// watch follows p's output (stdout and stderr, from its start) and timestamps every line as it
// arrives.
func watch(ctx context.Context, p *natlab.Process) *timedLines {
	tl := &timedLines{notify: make(chan struct{})}
	go func() {
		_, err := p.WaitLine(ctx, func(l string) bool {
			tl.mu.Lock()
			tl.lines = append(tl.lines, timedLine{l, time.Now()})
			close(tl.notify)
			tl.notify = make(chan struct{})
			tl.mu.Unlock()
			return false
		})
		tl.mu.Lock()
		tl.ended = err
		close(tl.notify)
		tl.mu.Unlock()
	}()
	return tl
}

// wait returns the first line matching pred, waiting for it until ctx ends or the process
// exits.
func (tl *timedLines) wait(ctx context.Context, pred func(string) bool) (timedLine, error) {
	next := 0
	for {
		tl.mu.Lock()
		for ; next < len(tl.lines); next++ {
			if pred(tl.lines[next].text) {
				l := tl.lines[next]
				tl.mu.Unlock()
				return l, nil
			}
		}
		ended, notify := tl.ended, tl.notify
		tl.mu.Unlock()
		if ended != nil {
			return timedLine{}, fmt.Errorf("process ended before the awaited line: %w", firstLine(ended))
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return timedLine{}, fmt.Errorf("waiting for a line: %w", ctx.Err())
		}
	}
}

// firstAfter returns the first line after t containing substr, without waiting.
func (tl *timedLines) firstAfter(t time.Time, substr string) (timedLine, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, l := range tl.lines {
		if l.at.After(t) && strings.Contains(l.text, substr) {
			return l, true
		}
	}
	return timedLine{}, false
}

// firstLine shortens natlab's errors, which carry the whole process output (already logged).
func firstLine(err error) error {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return errors.New(s[:i] + " (output above)")
	}
	return err
}

// median of ds (which it sorts).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	if len(ds)%2 == 1 {
		return ds[len(ds)/2]
	}
	return (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
}
