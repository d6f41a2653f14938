//go:build linux

// lab.go holds the Lab itself: how New builds the public segment, the names and namespaces a
// lab keeps track of, Close, and the state dump of a failed test.

package natlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// NamePrefix starts the name of every namespace a lab creates.
const NamePrefix = "nxl-"

// RequireEnv, when set to 1 in the environment, makes New fail instead of skipping.
const RequireEnv = "NATLAB_REQUIRE"

const netnsDir = "/run/netns"

var (
	procTag   = randomTag()
	labSeq    atomic.Int64
	sweepOnce sync.Once

	validName = regexp.MustCompile(`^[a-z][a-z0-9]{0,11}$`)

	publicHostNet = netip.MustParsePrefix("198.51.100.0/24")
	publicNATNet  = netip.MustParsePrefix("203.0.113.0/24")
)

func randomTag() string {
	var b [2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// Lab is one small internet of network namespaces. Create it with New; it is torn down when the
// test ends (or earlier by Close). Its methods may be called from several goroutines.
type Lab struct {
	t      testing.TB
	prefix string
	ipBin  string
	nftBin string

	mu         sync.Mutex
	names      map[string]bool
	namespaces []string
	procs      []*Process
	nats       []*NAT
	hosts      []*Host
	nextLAN    int
	closed     bool
	public     *Segment
	closeErr   error
	closedDone chan struct{}
}

// New builds an empty lab: the public segment's namespace and bridge. It skips the test (or
// fails it when NATLAB_REQUIRE=1) when not running as root, when ip or nft is missing, or when
// network namespaces cannot be created. Everything the lab makes is removed at t.Cleanup.
func New(t testing.TB) *Lab {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		msg := "natlab: " + fmt.Sprintf(format, args...)
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal(msg + " (" + RequireEnv + "=1 makes this a failure)")
		}
		t.Skip(msg)
	}
	if os.Geteuid() != 0 {
		skip("needs root for network namespaces and nftables; running as uid %d", os.Geteuid())
	}
	ipBin, err := findTool("ip")
	if err != nil {
		skip("ip (iproute2) not found: %v", err)
	}
	nftBin, err := findTool("nft")
	if err != nil {
		skip("nft (nftables) not found: %v; install the nftables package", err)
	}
	sweepOnce.Do(func() {
		if err := sweep(ipBin); err != nil {
			t.Logf("natlab: sweeping leftovers of earlier runs: %v", err)
		}
	})
	l := &Lab{
		t:          t,
		prefix:     fmt.Sprintf("%s%d-%s-%d-", NamePrefix, os.Getpid(), procTag, labSeq.Add(1)),
		ipBin:      ipBin,
		nftBin:     nftBin,
		names:      map[string]bool{},
		closedDone: make(chan struct{}),
	}
	t.Cleanup(func() {
		if t.Failed() {
			l.dump()
		}
		if err := l.Close(); err != nil {
			t.Errorf("natlab cleanup: %v", err)
		}
	})

	// The public segment: a bridge in the "inet" namespace.
	ns := l.prefix + "inet"
	if out, err := l.addNamespace(ns); err != nil {
		if isPermission(string(out)) {
			skip("cannot create network namespaces here: %v", err)
		}
		t.Fatalf("natlab: %v", err)
	}
	l.names["inet"] = true
	if err := l.ipBatch(ns,
		"link add br0 type bridge",
		"addr add 198.51.100.1/24 dev br0",
		"addr add 203.0.113.1/24 dev br0",
		"link set br0 up",
	); err != nil {
		t.Fatalf("natlab: public segment: %v", err)
	}
	l.public = &Segment{lab: l, name: "public", ns: ns, bridge: "br0", prefix: publicHostNet,
		gateway: netip.MustParseAddr("198.51.100.1"), next: 10, nextRouter: 10}
	return l
}

// Prefix is the prefix of every namespace name this lab creates.
func (l *Lab) Prefix() string { return l.prefix }

// PublicSegment is the "internet": public hosts (198.51.100.0/24) and NAT WAN sides
// (203.0.113.0/24) attach to it.
func (l *Lab) PublicSegment() *Segment { return l.public }

// Namespaces lists the namespaces this lab has created and not yet deleted.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.namespaces...)
}

// reserve claims a lab-unique name.
func (l *Lab) reserve(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("name %q: want 1-12 characters [a-z0-9], starting with a letter", name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("lab is closed")
	}
	if l.names[name] {
		return fmt.Errorf("name %q already used in this lab", name)
	}
	l.names[name] = true
	return nil
}

// Close stops every process the lab started and deletes every namespace it created. It is
// called automatically at the end of the test; calling it again returns the first result.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.closedDone
		return l.closeErr
	}
	l.closed = true
	procs := l.procs
	namespaces := l.namespaces
	l.mu.Unlock()

	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
	for i := len(namespaces) - 1; i >= 0; i-- {
		if err := deleteNamespace(l.ipBin, namespaces[i]); err != nil {
			errs = append(errs, err)
		}
	}
	l.mu.Lock()
	l.namespaces = nil
	l.closeErr = errors.Join(errs...)
	l.mu.Unlock()
	close(l.closedDone)
	return l.closeErr
}

// dump logs the state of every namespace; called at cleanup when the test failed.
func (l *Lab) dump() {
	l.mu.Lock()
	hosts := append([]*Host(nil), l.hosts...)
	nats := append([]*NAT(nil), l.nats...)
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, h := range hosts {
		out, err := h.Run(ctx, l.ipBin, "-br", "addr")
		l.t.Logf("natlab dump %s: ip -br addr:\n%s%v", h.name, out, errOrEmpty(err))
	}
	for _, n := range nats {
		out, err := n.router.Run(ctx, l.nftBin, "list", "table", "ip", "natlab")
		l.t.Logf("natlab dump %s: nft list table ip natlab:\n%s%v", n.router.name, out, errOrEmpty(err))
		out, err = n.router.Run(ctx, "cat", "/proc/net/nf_conntrack")
		l.t.Logf("natlab dump %s: conntrack:\n%s%v", n.router.name, out, errOrEmpty(err))
	}
}

func errOrEmpty(err error) any {
	if err == nil {
		return ""
	}
	return err
}
