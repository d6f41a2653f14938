//go:build linux

package natlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
)

// Kind is the behaviour of a NAT gateway.
type Kind int

const (
	// Cone is plain masquerade: endpoint-independent mapping, address-and-port-dependent
	// filtering (a port-restricted cone NAT).
	Cone Kind = iota
	// Symmetric is masquerade fully-random: a new mapping for every remote ip:port.
	Symmetric
	// BlockUDP is Cone that drops all forwarded outbound UDP; TCP still passes.
	BlockUDP
	// BlockPeerUDP is Cone behind a firewall that lets UDP out to public hosts only
	// (198.51.100.0/24: STUN servers, the relay) and drops UDP toward other NATs' WAN addresses
	// (203.0.113.0/24), where the peers are: STUN works, hole punching cannot.
	BlockPeerUDP
)

func (k Kind) String() string {
	switch k {
	case Cone:
		return "cone"
	case Symmetric:
		return "symmetric"
	case BlockUDP:
		return "block-udp"
	case BlockPeerUDP:
		return "block-peer-udp"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// NAT is a router namespace: WAN side (wan0) on an upstream segment, LAN side a bridge (lan0)
// with a private /24, and an nftables table "ip natlab" doing the NAT.
type NAT struct {
	router *Host
	lan    *Segment

	mu     sync.Mutex
	kind   Kind
	lo, hi uint16 // masquerade port range; 0,0 = kernel default
}

// AddNAT creates a NAT gateway whose WAN side is on upstream (usually the public segment; a
// NAT's LAN gives a double NAT) and whose LAN is a new segment 10.N.0.0/24. It fails the test
// on error.
func (l *Lab) AddNAT(name string, upstream *Segment, kind Kind) *NAT {
	l.t.Helper()
	n, err := l.addNAT(name, upstream, kind)
	if err != nil {
		l.t.Fatalf("natlab: AddNAT %s: %v", name, err)
	}
	return n
}

func (l *Lab) addNAT(name string, upstream *Segment, kind Kind) (*NAT, error) {
	if kind < Cone || kind > BlockPeerUDP {
		return nil, fmt.Errorf("unknown NAT kind %d", kind)
	}
	l.mu.Lock()
	l.nextLAN++
	lanN := l.nextLAN
	l.mu.Unlock()
	if lanN > 254 {
		return nil, errors.New("too many NATs")
	}
	r, err := l.addHost(name, upstream, "wan0", true)
	if err != nil {
		return nil, err
	}
	gw := netip.AddrFrom4([4]byte{10, byte(lanN), 0, 1})
	if err := l.ipBatch(r.ns,
		"link add lan0 type bridge",
		fmt.Sprintf("addr add %s/24 dev lan0", gw),
		"link set lan0 up",
	); err != nil {
		return nil, err
	}
	if err := doInNetns(r.ns, func() error { return writeSysctl("/proc/sys/net/ipv4/ip_forward", "1") }); err != nil {
		return nil, err
	}
	n := &NAT{
		router: r,
		kind:   kind,
		lan: &Segment{lab: l, name: name, ns: r.ns, bridge: "lan0",
			prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(lanN), 0, 0}), 24), gateway: gw, next: 10},
	}
	if err := n.apply(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.nats = append(l.nats, n)
	l.mu.Unlock()
	return n, nil
}

// LAN is the NAT's private segment; hosts added to it route through the NAT.
func (n *NAT) LAN() *Segment { return n.lan }

// IP is the NAT's WAN address: the address public hosts see its LAN hosts as.
func (n *NAT) IP() netip.Addr { return n.router.IP() }

// Name is the NAT's name within the lab.
func (n *NAT) Name() string { return n.router.name }

// Router is the router namespace itself, e.g. to run nft or tcpdump in it.
func (n *NAT) Router() *Host { return n.router }

// Kind is the NAT's current behaviour.
func (n *NAT) Kind() Kind {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.kind
}

// SetKind changes the NAT's behaviour. Flows that already have a conntrack entry keep their
// mapping (and UDP flows already forwarded keep passing) until the entry expires or
// FlushConntrack is called.
func (n *NAT) SetKind(kind Kind) error {
	if kind < Cone || kind > BlockPeerUDP {
		return fmt.Errorf("natlab: unknown NAT kind %d", kind)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.kind
	n.kind = kind
	if err := n.applyLocked(); err != nil {
		n.kind = old
		return err
	}
	return nil
}

// SetPortRange makes masquerade allocate TCP and UDP ports from lo-hi only (0, 0 restores the
// kernel's default), then flushes the conntrack table: nftables applies a new range only to new
// flows, so without the flush an active flow would keep its mapping indefinitely. The next
// packet of every flow therefore gets a new mapping from the new range.
func (n *NAT) SetPortRange(lo, hi uint16) error {
	if lo > hi || (lo == 0) != (hi == 0) {
		return fmt.Errorf("natlab: bad port range %d-%d", lo, hi)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	oldLo, oldHi := n.lo, n.hi
	n.lo, n.hi = lo, hi
	if err := n.applyLocked(); err != nil {
		n.lo, n.hi = oldLo, oldHi
		return err
	}
	return n.flushLocked()
}

// FlushConntrack deletes the NAT's whole conntrack table, as a router reboot would: every flow
// through it gets a new mapping on its next outbound packet (a Cone NAT tries to give the same
// port again when it is free and in range), and inbound packets of a flow are dropped until
// the LAN host sends again.
func (n *NAT) FlushConntrack() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.flushLocked()
}

func (n *NAT) flushLocked() error {
	if err := doInNetns(n.router.ns, ctnetlinkFlush); err != nil {
		return fmt.Errorf("natlab: %s: %w", n.router.name, err)
	}
	return nil
}

func (n *NAT) apply() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.applyLocked()
}

// ruleset renders the NAT's nftables table. It replaces the table atomically.
func (n *NAT) ruleset() string {
	flags := ""
	if n.kind == Symmetric {
		flags = " fully-random"
	}
	ports := ""
	if n.lo != 0 {
		ports = fmt.Sprintf(" to :%d-%d", n.lo, n.hi)
	}
	blockUDP := ""
	switch n.kind {
	case BlockUDP:
		blockUDP = "\t\toifname \"wan0\" meta l4proto udp counter drop comment \"BlockUDP\"\n"
	case BlockPeerUDP:
		blockUDP = fmt.Sprintf("\t\toifname \"wan0\" ip daddr %s meta l4proto udp counter drop comment \"BlockPeerUDP\"\n", publicNATNet)
	}
	var b strings.Builder
	b.WriteString("table ip natlab {}\ndelete table ip natlab\n")
	fmt.Fprintf(&b, `table ip natlab {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan0" meta l4proto { tcp, udp } masquerade%s%s
		oifname "wan0" masquerade%s
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		iifname "wan0" counter drop comment "unsolicited inbound"
%s	}
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "wan0" ct state established,related accept
		iifname "wan0" icmp type echo-request accept
		iifname "wan0" counter drop comment "nothing listens on the router"
	}
}
`, ports, flags, flags, blockUDP)
	return b.String()
}

func (n *NAT) applyLocked() error {
	c := n.router.Command(context.Background(), n.router.lab.nftBin, "-f", "-")
	if _, err := runCmd(c, []byte(n.ruleset())); err != nil {
		return fmt.Errorf("natlab: %s: %w", n.router.name, err)
	}
	return nil
}

// Ruleset returns "nft list table ip natlab" from the router, with counters.
func (n *NAT) Ruleset(ctx context.Context) (string, error) {
	out, err := runCmd(n.router.Command(ctx, n.router.lab.nftBin, "list", "table", "ip", "natlab"), nil)
	return string(out), err
}
