//go:build linux

package wanlab

// path.go holds Path: two hosts of a NAT lab (internal/natlab, used as a library) on its public
// segment, whose packets to each other cross a wide-area path of a given round-trip time and
// loss. What each host receives from the other goes to an NFQUEUE (iptables -j NFQUEUE in
// INPUT) that a Queue of this process serves in that host's namespace, with half the RTT and
// the loss. On the receiving side, not the sending one: a packet held on its way out still
// counts against its socket, and TCP small queues then keep a sender to a couple of packets
// per delay (netem orphans the packets it holds for the same reason).

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/internal/natlab"
)

// Profile is a wide-area path.
type Profile struct {
	Name string
	RTT  time.Duration // round-trip time added (half in each direction)
	Loss float64       // loss in each direction, as a fraction
}

// Profiles are the paths of the WAN benchmark (issue 17).
var Profiles = []Profile{
	{Name: "50ms", RTT: 50 * time.Millisecond},
	{Name: "50ms-1%", RTT: 50 * time.Millisecond, Loss: 0.01},
	{Name: "150ms-0.1%", RTT: 150 * time.Millisecond, Loss: 0.001},
}

// impairment is one direction of the profile.
func (p Profile) impairment() Impairment { return Impairment{Delay: p.RTT / 2, Loss: p.Loss} }

// Path is two lab hosts, A and B, with an impaired path between them.
type Path struct {
	A, B   *natlab.Host
	queues [2]*Queue // A→B (served in B), B→A (served in A)
}

// NewPath builds the lab and the path with profile p. Like natlab.New it skips the test
// (fails it with NATLAB_REQUIRE=1) where the lab cannot run, and also where iptables is missing;
// everything is removed at t.Cleanup.
func NewPath(t testing.TB, p Profile) *Path {
	t.Helper()
	lab := natlab.New(t)
	iptables, err := findIptables()
	if err != nil {
		msg := "wanlab: " + err.Error()
		if os.Getenv(natlab.RequireEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	path := &Path{A: lab.AddHost("wana", lab.PublicSegment()), B: lab.AddHost("wanb", lab.PublicSegment())}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, h := range []*natlab.Host{path.B, path.A} {
		other := path.A
		if h == path.A {
			other = path.B
		}
		var q *Queue
		err := h.Do(func() (err error) {
			q, err = OpenQueue(ctx, 0, p.impairment())
			return err
		})
		if err != nil {
			t.Fatalf("wanlab: host %s: %v", h.Name(), err)
		}
		path.queues[i] = q
		t.Cleanup(func() {
			if err := q.Close(); err != nil {
				t.Errorf("wanlab: %v", err)
			}
		})
		// The queue is served before the rule sends packets to it.
		if out, err := h.Run(ctx, iptables, "-w", "-A", "INPUT", "-s", other.IP().String()+"/32",
			"-j", "NFQUEUE", "--queue-num", "0"); err != nil {
			t.Fatalf("wanlab: host %s: iptables: %v\n%s", h.Name(), err, out)
		}
	}
	return path
}

// Set changes the path's profile from now on.
func (p *Path) Set(prof Profile) {
	for _, q := range p.queues {
		q.SetImpairment(prof.impairment())
	}
}

// Stats returns what each direction's queue did: A→B, then B→A.
func (p *Path) Stats() [2]QueueStats {
	return [2]QueueStats{p.queues[0].Stats(), p.queues[1].Stats()}
}

// Err returns the first error of either queue; a path whose queue failed drops everything.
func (p *Path) Err() error {
	for _, q := range p.queues {
		if err := q.Err(); err != nil {
			return err
		}
	}
	return nil
}

// KernelDrops reads the kernel's own drop counters of the hosts' queues (queue full, socket
// overrun): packets lost beyond the profile's loss, which would skew a figure.
func (p *Path) KernelDrops(ctx context.Context) (uint64, error) {
	var total uint64
	for _, h := range []*natlab.Host{p.A, p.B} {
		out, err := h.Run(ctx, "cat", "/proc/net/netfilter/nfnetlink_queue")
		if err != nil {
			return 0, err
		}
		// queue_number peer_portid queue_total copy_mode copy_range queue_dropped user_dropped id_sequence 1
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var f [9]uint64
			if _, err := fmt.Sscan(line, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8]); err == nil {
				total += f[5] + f[6]
			}
		}
	}
	return total, nil
}

func findIptables() (string, error) {
	if p, err := exec.LookPath("iptables"); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if st, err := os.Stat(dir + "/iptables"); err == nil && st.Mode().IsRegular() {
			return dir + "/iptables", nil
		}
	}
	return "", fmt.Errorf("iptables not found (install the iptables package): the NFQUEUE delay needs it")
}
