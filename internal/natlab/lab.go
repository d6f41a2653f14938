//go:build linux

package natlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
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

func findTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not in PATH nor in /usr/sbin, /sbin", name)
}

func isPermission(out string) bool {
	out = strings.ToLower(out)
	return strings.Contains(out, "operation not permitted") || strings.Contains(out, "permission denied")
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
		return fmt.Errorf("natlab: name %q: want 1-12 characters [a-z0-9], starting with a letter", name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("natlab: lab is closed")
	}
	if l.names[name] {
		return fmt.Errorf("natlab: name %q already used in this lab", name)
	}
	l.names[name] = true
	return nil
}

// addNamespace creates a namespace (recording it before creation so cleanup always sees it),
// brings loopback up and sets the namespace-local sysctls every lab namespace gets.
func (l *Lab) addNamespace(ns string) ([]byte, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("lab is closed")
	}
	l.namespaces = append(l.namespaces, ns)
	l.mu.Unlock()
	if out, err := l.cmd(context.Background(), l.ipBin, "netns", "add", ns); err != nil {
		return out, err
	}
	if err := l.ipBatch(ns, "link set lo up"); err != nil {
		return nil, err
	}
	err := doInNetns(ns, func() error {
		for file, val := range map[string]string{
			"/proc/sys/net/ipv6/conf/all/disable_ipv6":      "1",
			"/proc/sys/net/ipv6/conf/default/disable_ipv6":  "1",
			"/proc/sys/net/bridge/bridge-nf-call-iptables":  "0",
			"/proc/sys/net/bridge/bridge-nf-call-ip6tables": "0",
			"/proc/sys/net/bridge/bridge-nf-call-arptables": "0",
		} {
			if err := writeSysctl(file, val); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		return nil
	})
	return nil, err
}

func writeSysctl(file, val string) error {
	if err := os.WriteFile(file, []byte(val), 0); err != nil {
		return fmt.Errorf("write %s=%s: %w", file, val, err)
	}
	return nil
}

// cmd runs a command and returns its combined output; the error names the command and
// includes the output.
func (l *Lab) cmd(ctx context.Context, name string, args ...string) ([]byte, error) {
	return runCmd(exec.CommandContext(ctx, name, args...), nil)
}

func runCmd(c *exec.Cmd, stdin []byte) ([]byte, error) {
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	out, err := c.CombinedOutput()
	if err != nil {
		in := ""
		if stdin != nil {
			in = fmt.Sprintf("\nstdin:\n%s", stdin)
		}
		return out, fmt.Errorf("%s: %w%s\noutput:\n%s", strings.Join(c.Args, " "), err, in, out)
	}
	return out, nil
}

// ipBatch runs ip commands inside namespace ns in one ip process.
func (l *Lab) ipBatch(ns string, cmds ...string) error {
	c := exec.Command(l.ipBin, "-n", ns, "-batch", "-")
	_, err := runCmd(c, []byte(strings.Join(cmds, "\n")+"\n"))
	return err
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

// deleteNamespace kills whatever still runs in ns and deletes it. A namespace that does not
// exist is not an error.
func deleteNamespace(ipBin, ns string) error {
	if _, err := os.Stat(netnsDir + "/" + ns); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := exec.Command(ipBin, "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if _, err := runCmd(exec.Command(ipBin, "netns", "delete", ns), nil); err != nil {
		if _, serr := os.Stat(netnsDir + "/" + ns); errors.Is(serr, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return nil
}

// Sweep deletes namespaces left behind by lab processes that are no longer running (their
// names carry the creating process's PID). New calls it once per process.
func Sweep() error {
	ipBin, err := findTool("ip")
	if err != nil {
		return err
	}
	return sweep(ipBin)
}

func sweep(ipBin string) error {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		pid, ok := ownerPID(e.Name())
		if !ok || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if err := deleteNamespace(ipBin, e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ownerPID parses the PID out of a lab namespace name "nxl-<pid>-<tag>-<n>-<name>".
func ownerPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, NamePrefix)
	if !ok {
		return 0, false
	}
	parts := strings.SplitN(rest, "-", 4)
	if len(parts) != 4 {
		return 0, false
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
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

// Segment is an L2 network: the public segment or a NAT's LAN.
type Segment struct {
	lab        *Lab
	name       string
	ns         string // namespace holding the bridge
	bridge     string
	prefix     netip.Prefix
	gateway    netip.Addr
	mu         sync.Mutex
	next       int // next host octet
	nextRouter int // public segment: next NAT WAN octet in 203.0.113.0/24
}

// Name is "public" or the name of the NAT whose LAN this is.
func (s *Segment) Name() string { return s.name }

// Prefix is the segment's subnet for hosts (198.51.100.0/24 on the public segment).
func (s *Segment) Prefix() netip.Prefix { return s.prefix }

// Gateway is the address hosts on the segment route through: a NAT's LAN address, or on the
// public segment the bridge's own address (which does not forward).
func (s *Segment) Gateway() netip.Addr { return s.gateway }

// IsPublic reports whether this is the lab's public segment.
func (s *Segment) IsPublic() bool { return s == s.lab.public }

// allocate returns the next address (with prefix length) and gateway for a host or a router.
func (s *Segment) allocate(router bool) (netip.Prefix, netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	base, octet := s.prefix, &s.next
	gw := s.gateway
	if router && s.IsPublic() {
		base, octet = publicNATNet, &s.nextRouter
		gw = netip.MustParseAddr("203.0.113.1")
	}
	if *octet > 254 {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("natlab: segment %s is full", s.name)
	}
	a := base.Addr().As4()
	a[3] = byte(*octet)
	*octet++
	return netip.PrefixFrom(netip.AddrFrom4(a), base.Bits()), gw, nil
}

// attach connects namespace ns to the segment with a veth pair whose end in ns is ifname,
// assigns it the next free address and routes. It returns the address.
func (s *Segment) attach(ns, name, ifname string, router bool) (netip.Addr, error) {
	addr, gw, err := s.allocate(router)
	if err != nil {
		return netip.Addr{}, err
	}
	port := "p-" + name
	if err := s.lab.ipBatch(s.ns,
		fmt.Sprintf("link add %s type veth peer name %s netns %s", port, ifname, ns),
		fmt.Sprintf("link set %s master %s", port, s.bridge),
		fmt.Sprintf("link set %s up", port),
	); err != nil {
		return netip.Addr{}, err
	}
	cmds := []string{
		fmt.Sprintf("addr add %s dev %s", addr, ifname),
		fmt.Sprintf("link set %s up", ifname),
	}
	if s.IsPublic() {
		// Both public ranges are on-link on the public bridge.
		for _, p := range []netip.Prefix{publicHostNet, publicNATNet} {
			if !p.Contains(addr.Addr()) {
				cmds = append(cmds, fmt.Sprintf("route add %s dev %s", p, ifname))
			}
		}
	}
	cmds = append(cmds, fmt.Sprintf("route add default via %s dev %s", gw, ifname))
	if err := s.lab.ipBatch(ns, cmds...); err != nil {
		return netip.Addr{}, err
	}
	return addr.Addr(), nil
}

// Host is a network namespace attached to one segment.
type Host struct {
	lab    *Lab
	name   string
	ns     string
	ifname string
	mu     sync.Mutex
	seg    *Segment
	ip     netip.Addr
}

// AddHost creates a host namespace on seg, with its default route via the segment's gateway.
// It fails the test on error.
func (l *Lab) AddHost(name string, seg *Segment) *Host {
	l.t.Helper()
	h, err := l.addHost(name, seg, "eth0", false)
	if err != nil {
		l.t.Fatalf("natlab: AddHost %s: %v", name, err)
	}
	return h
}

func (l *Lab) addHost(name string, seg *Segment, ifname string, router bool) (*Host, error) {
	if seg == nil || seg.lab != l {
		return nil, errors.New("segment does not belong to this lab")
	}
	if err := l.reserve(name); err != nil {
		return nil, err
	}
	h := &Host{lab: l, name: name, ns: l.prefix + name, ifname: ifname}
	if _, err := l.addNamespace(h.ns); err != nil {
		return nil, err
	}
	ip, err := seg.attach(h.ns, name, ifname, router)
	if err != nil {
		return nil, err
	}
	h.seg, h.ip = seg, ip
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	return h, nil
}

// Name is the host's name within the lab.
func (h *Host) Name() string { return h.name }

// Namespace is the host's network namespace name (for "ip netns exec").
func (h *Host) Namespace() string { return h.ns }

// IP is the host's address on its segment (for a NAT, its WAN address).
func (h *Host) IP() netip.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ip
}

// Segment is the segment the host is attached to.
func (h *Host) Segment() *Segment {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seg
}

// MoveTo detaches the host from its segment and attaches it to seg with a new address, like a
// laptop moving to another network. Sockets stay open; the old address disappears.
func (h *Host) MoveTo(seg *Segment) error {
	if seg == nil || seg.lab != h.lab {
		return errors.New("natlab: segment does not belong to this lab")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.lab.ipBatch(h.ns, "link del "+h.ifname); err != nil {
		return err
	}
	ip, err := seg.attach(h.ns, h.name, h.ifname, false)
	if err != nil {
		return err
	}
	h.seg, h.ip = seg, ip
	return nil
}

// Command returns an exec.Cmd that runs name inside the host's namespace (ip netns exec). The
// caller may set Env, Stdin and so on before running it, or pass it to StartCmd.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, h.lab.ipBin, append([]string{"netns", "exec", h.ns, name}, args...)...)
}

// Run runs a command inside the host's namespace and returns its combined output. The error
// names the command and includes the output.
func (h *Host) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return runCmd(h.Command(ctx, name, args...), nil)
}
