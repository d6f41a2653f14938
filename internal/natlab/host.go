//go:build linux

// host.go holds Host, a namespace attached to one segment: adding one, moving it to another
// segment, and running commands in it. Opening sockets in it is in netns.go.

package natlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"sync"
)

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
	if err := h.moveTo(seg); err != nil {
		return fmt.Errorf("natlab: move %s: %w", h.name, err)
	}
	return nil
}

func (h *Host) moveTo(seg *Segment) error {
	if seg == nil || seg.lab != h.lab {
		return errors.New("segment does not belong to this lab")
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
