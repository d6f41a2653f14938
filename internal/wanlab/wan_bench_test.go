//go:build linux

package wanlab

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/internal/natlab"
	"github.com/nexodus-sdk/nexodus/key"
	"github.com/nexodus-sdk/nexodus/mesh"
	"golang.org/x/sys/unix"
)

var (
	wanDuration = flag.Duration("wan.duration", 10*time.Second, "WAN benchmark: length of each bulk transfer")
	wanPings    = flag.Duration("wan.pings", 12*time.Second, "WAN benchmark: time spent on 1-byte round trips per row (at least 50)")
	wanDials    = flag.Int("wan.dials", 10, "WAN benchmark: first dials per row")
	wanOnly     = flag.String("wan.profiles", "", "WAN benchmark: comma-separated profile names to run (empty: all)")
)

// BenchmarkWAN measures, on each profile of Profiles, bulk TCP one way in each direction
// between two lab hosts: plain kernel TCP with the namespace's default congestion control and
// with Reno, and TCP through two meshes (this project's data plane: gVisor netstack, WireGuard,
// one UDP socket each) — all over the same impaired path in the same run. Then 1-byte round
// trips over both, and the time from two meshes that just learned of each other to the first
// echoed byte of a Dial. Needs root (skips otherwise); the README's WAN table is three runs of
//
//	go test ./internal/wanlab/ -run '^$' -bench WAN -benchtime 1x
//
// Figures: Mbit/s of each transfer; p50-ms/p99-ms of the round trips; p50-ms/max-ms of the
// first dials; kdrop counts packets the kernel lost beyond the profile (NFQUEUE overflow),
// which must stay 0 for a figure to count.
func BenchmarkWAN(b *testing.B) {
	path := NewPath(b, Profiles[0])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defaultCC, err := readIn(path.A, "/proc/sys/net/ipv4/tcp_congestion_control")
	if err != nil {
		b.Fatal(err)
	}
	kernel := newKernelPair(b, path)
	pair := newMeshPair(b, ctx, path, true)
	b.Cleanup(pair.close)
	if err := pair.setPeers(ctx); err != nil {
		b.Fatal(err)
	}
	for _, prof := range Profiles {
		if *wanOnly != "" && !slices.Contains(strings.Split(*wanOnly, ","), prof.Name) {
			continue
		}
		b.Run(prof.Name, func(b *testing.B) {
			path.Set(prof)
			for _, dir := range []string{"a-to-b", "b-to-a"} {
				for _, cc := range []string{defaultCC, "reno"} {
					b.Run("kernel-"+cc+"/"+dir, func(b *testing.B) {
						benchBulk(b, path, kernel.withCC(cc), dir)
					})
				}
				b.Run("mesh/"+dir, func(b *testing.B) { benchBulk(b, path, pair.conns, dir) })
			}
			pings := max(50, int(*wanPings/prof.RTT))
			b.Run("rtt/kernel-"+defaultCC, func(b *testing.B) { benchRTT(b, kernel.withCC(defaultCC), pings) })
			b.Run("rtt/mesh", func(b *testing.B) { benchRTT(b, pair.conns, pings) })
			for _, fd := range []struct {
				name        string
				aSmaller    bool // the dialer is the preferred initiator
				unpublished bool // B does not know A's address (A behind a NAT, no ICE pair yet)
			}{
				{"dialer-initiates", true, false},
				{"peer-initiates", false, false},
				{"peer-initiates-no-address", false, true},
			} {
				b.Run("first-dial/mesh-"+fd.name, func(b *testing.B) { benchFirstDial(b, ctx, path, fd.aSmaller, fd.unpublished) })
			}
		})
	}
}

// connPair makes a connection from A to B and returns both ends.
type connPair func(ctx context.Context) (a, b net.Conn, err error)

func benchBulk(b *testing.B, path *Path, conns connPair, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), *wanDuration+30*time.Second)
	defer cancel()
	before, _ := path.KernelDrops(ctx)
	var total int64
	var elapsed time.Duration
	for b.Loop() {
		ca, cb, err := conns(ctx)
		if err != nil {
			b.Fatal(err)
		}
		w, r := ca, cb
		if dir == "b-to-a" {
			w, r = cb, ca
		}
		n, d, err := transfer(w, r, *wanDuration)
		ca.Close()
		cb.Close()
		if err != nil {
			b.Fatal(err)
		}
		total += n
		elapsed += d
	}
	after, _ := path.KernelDrops(ctx)
	b.ReportMetric(float64(total)*8/elapsed.Seconds()/1e6, "Mbit/s")
	b.ReportMetric(float64(after-before), "kdrop")
	b.ReportMetric(0, "ns/op")
}

// transfer writes to w as fast as it goes for d and returns how much r read in that time.
func transfer(w, r net.Conn, d time.Duration) (int64, time.Duration, error) {
	start := time.Now()
	deadline := start.Add(d)
	w.SetWriteDeadline(deadline)
	r.SetReadDeadline(deadline)
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, 128<<10)
		for {
			if _, err := w.Write(buf); err != nil {
				werr <- err
				return
			}
		}
	}()
	n, err := io.Copy(io.Discard, r)
	if !isTimeout(err) {
		return n, 0, fmt.Errorf("bulk read: %v after %d bytes", err, n)
	}
	if err := <-werr; !isTimeout(err) {
		return n, 0, fmt.Errorf("bulk write: %w", err)
	}
	return n, time.Since(start), nil
}

// isTimeout reports a deadline's error: os.ErrDeadlineExceeded from kernel sockets, a timeout
// net.Error from netstack's.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func benchRTT(b *testing.B, conns connPair, pings int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute+time.Duration(pings)*time.Second)
	defer cancel()
	var rtts []time.Duration
	for b.Loop() {
		ca, cb, err := conns(ctx)
		if err != nil {
			b.Fatal(err)
		}
		deadline, _ := ctx.Deadline()
		ca.SetDeadline(deadline)
		cb.SetDeadline(deadline)
		go io.Copy(cb, cb) // echo; ends when the connection closes
		one := []byte{1}
		for range pings {
			start := time.Now()
			if _, err := ca.Write(one); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(ca, one); err != nil {
				b.Fatal(err)
			}
			rtts = append(rtts, time.Since(start))
		}
		ca.Close()
		cb.Close()
	}
	slices.Sort(rtts)
	b.Logf("slowest round trips: %v", rtts[max(0, len(rtts)-5):])
	b.ReportMetric(ms(rtts[len(rtts)/2]), "p50-ms")
	b.ReportMetric(ms(rtts[len(rtts)*99/100]), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// benchFirstDial times, for two meshes that are given each other as peers (on both sides, when
// the clock starts), the peers' set-up, a Dial from A and one echoed byte. aSmaller: A has the
// smaller key and starts the handshake; unpublished: B is given no address of A, and learns it
// from A's first packet (A behind a NAT, before NAT traversal pinned a pair).
func benchFirstDial(b *testing.B, ctx context.Context, path *Path, aSmaller, unpublished bool) {
	var times []time.Duration
	for b.Loop() {
		for range *wanDials {
			p := newMeshPair(b, ctx, path, aSmaller)
			if unpublished {
				p.peers[1].Endpoints = nil
			}
			d, err := p.firstDial(ctx)
			p.close()
			if err != nil {
				b.Fatal(err)
			}
			times = append(times, d)
		}
	}
	slices.Sort(times)
	b.Logf("first dials: %v", times)
	b.ReportMetric(ms(times[len(times)/2]), "p50-ms")
	b.ReportMetric(ms(times[len(times)-1]), "max-ms")
	b.ReportMetric(0, "ns/op")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func readIn(h *natlab.Host, file string) (string, error) {
	var s string
	err := h.Do(func() error {
		b, err := os.ReadFile(file)
		s = strings.TrimSpace(string(b))
		return err
	})
	return s, err
}

// kernelPair is plain TCP from A to B over the path.
type kernelPair struct {
	dial     func(ctx context.Context) (net.Conn, error)
	accepted chan net.Conn
}

func newKernelPair(b *testing.B, path *Path) *kernelPair {
	ln, err := path.B.Listen("tcp4", ":0")
	if err != nil {
		b.Fatal(err)
	}
	to := netip.AddrPortFrom(path.B.IP(), uint16(ln.Addr().(*net.TCPAddr).Port)).String()
	k := &kernelPair{accepted: make(chan net.Conn, 1)}
	k.dial = func(ctx context.Context) (net.Conn, error) { return path.A.Dial(ctx, "tcp4", to) }
	go acceptLoop(ln, k.accepted)
	b.Cleanup(func() { ln.Close() })
	return k
}

// withCC returns connections whose both ends use congestion control cc.
func (k *kernelPair) withCC(cc string) connPair {
	return func(ctx context.Context) (net.Conn, net.Conn, error) {
		ca, cb, err := accept(ctx, k.dial, k.accepted)
		if err != nil {
			return nil, nil, err
		}
		for _, c := range []net.Conn{ca, cb} {
			if err := setCC(c, cc); err != nil {
				ca.Close()
				cb.Close()
				return nil, nil, err
			}
		}
		return ca, cb, nil
	}
}

func setCC(c net.Conn, cc string) error {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("set congestion control %s: %w", cc, serr)
	}
	return nil
}

func acceptLoop(ln net.Listener, out chan<- net.Conn) {
	for {
		c, err := ln.Accept()
		if err != nil {
			close(out)
			return
		}
		out <- c
	}
}

// accept dials and returns the dialed end and the accepted one.
func accept(ctx context.Context, dial func(context.Context) (net.Conn, error), accepted <-chan net.Conn) (net.Conn, net.Conn, error) {
	ca, err := dial(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("dial: %w", err)
	}
	select {
	case cb, ok := <-accepted:
		if !ok {
			ca.Close()
			return nil, nil, errors.New("listener closed")
		}
		return ca, cb, nil
	case <-ctx.Done():
		ca.Close()
		return nil, nil, ctx.Err()
	}
}

// meshPair is two meshes, one in each host's namespace, that are each other's peer.
type meshPair struct {
	a, b     *mesh.Mesh
	bAddr    netip.Addr
	ln       net.Listener
	accepted chan net.Conn
	peers    [2]mesh.Peer // b for a, a for b
	wg       sync.WaitGroup
}

var (
	tunA = netip.MustParseAddr("100.64.0.1")
	tunB = netip.MustParseAddr("100.64.0.2")
)

// newMeshPair starts the meshes, not yet peers (setPeers, firstDial). aSmaller picks which has
// the smaller public key.
func newMeshPair(b *testing.B, ctx context.Context, path *Path, aSmaller bool) *meshPair {
	ka, kb := orderedKeys(aSmaller)
	p := &meshPair{bAddr: tunB, accepted: make(chan net.Conn, 1)}
	start := func(h *natlab.Host, k key.Key, addr netip.Addr) *mesh.Mesh {
		var m *mesh.Mesh
		err := h.Do(func() (err error) {
			m, err = mesh.New(ctx, mesh.Config{PrivateKey: k, Addresses: []netip.Addr{addr},
				ListenAddr: netip.AddrPortFrom(h.IP(), 0)})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	p.a, p.b = start(path.A, ka, tunA), start(path.B, kb, tunB)
	ln, err := p.b.Listen("tcp", ":5001")
	if err != nil {
		b.Fatal(err)
	}
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		acceptLoop(ln, p.accepted)
	}()
	p.peers = [2]mesh.Peer{
		{PublicKey: kb.Public(), AllowedIPs: []netip.Prefix{netip.PrefixFrom(tunB, 32)}, Endpoints: []netip.AddrPort{p.b.LocalAddr()}},
		{PublicKey: ka.Public(), AllowedIPs: []netip.Prefix{netip.PrefixFrom(tunA, 32)}, Endpoints: []netip.AddrPort{p.a.LocalAddr()}},
	}
	return p
}

func (p *meshPair) setPeers(ctx context.Context) error {
	if err := p.a.SetPeers(ctx, p.peers[:1]); err != nil {
		return err
	}
	return p.b.SetPeers(ctx, p.peers[1:])
}

func (p *meshPair) conns(ctx context.Context) (net.Conn, net.Conn, error) {
	dial := func(ctx context.Context) (net.Conn, error) {
		return p.a.DialContext(ctx, "tcp", netip.AddrPortFrom(p.bAddr, 5001).String())
	}
	return accept(ctx, dial, p.accepted)
}

// firstDial makes the meshes each other's peers, as when both learn of the other at once, and
// times from there to one byte sent to B and back: A writes as soon as Dial returns, as a
// client does, and B echoes once it accepted.
func (p *meshPair) firstDial(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := p.setPeers(ctx); err != nil {
		return 0, err
	}
	ca, err := p.a.DialContext(ctx, "tcp", netip.AddrPortFrom(p.bAddr, 5001).String())
	if err != nil {
		return 0, err
	}
	defer ca.Close()
	deadline, _ := ctx.Deadline()
	ca.SetDeadline(deadline)
	one := []byte{7}
	if _, err := ca.Write(one); err != nil {
		return 0, err
	}
	select {
	case cb, ok := <-p.accepted:
		if !ok {
			return 0, errors.New("listener closed")
		}
		defer cb.Close()
		cb.SetDeadline(deadline)
		go io.Copy(cb, cb)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if _, err := io.ReadFull(ca, one); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func (p *meshPair) close() {
	p.ln.Close()
	p.a.Close()
	p.b.Close()
	p.wg.Wait()
}

func orderedKeys(firstSmaller bool) (a, b key.Key) {
	for {
		a, b = newKey(), newKey()
		pa, pb := a.Public(), b.Public()
		if (bytes.Compare(pa[:], pb[:]) < 0) == firstSmaller {
			return a, b
		}
	}
}

func newKey() key.Key {
	k, err := key.Generate()
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return k
}
