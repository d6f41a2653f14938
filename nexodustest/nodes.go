package nexodustest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/internal/engine"
)

// NodeOption adjusts a Node before the Kit hands it out; any func(*nexodus.Node) will do.
type NodeOption func(*nexodus.Node)

// ForceRelay makes the Node send everything through the relay (see [nexodus.Node.ForceRelay]).
func ForceRelay() NodeOption { return func(n *nexodus.Node) { n.ForceRelay = true } }

// WithAuthKey registers the Node with another registration key (another organization's, say).
func WithAuthKey(key string) NodeOption { return func(n *nexodus.Node) { n.AuthKey = key } }

// WithStateDir keeps the Node's identity in dir, so that a new Node on the same dir comes back
// as the same device.
func WithStateDir(dir string) NodeOption { return func(n *nexodus.Node) { n.StateDir = dir } }

// Node returns a Node of the Kit's organization, configured but not started; it is closed when
// the test ends.
func (k *Kit) Node(hostname string, opts ...NodeOption) *nexodus.Node {
	n := &nexodus.Node{
		ControlURL: k.URL,
		AuthKey:    k.AuthKey,
		Hostname:   hostname,
		Logger:     k.opts.logger.With("node", hostname),
	}
	for _, o := range opts {
		o(n)
	}
	k.t.Cleanup(func() { n.Close() })
	return n
}

// Up returns a started Node (see Node).
func (k *Kit) Up(hostname string, opts ...NodeOption) *nexodus.Node {
	k.t.Helper()
	n := k.Node(hostname, opts...)
	_, err := n.Up(k.ctx)
	require.NoError(k.t, err, "up %s", hostname)
	return n
}

// Pair starts two Nodes and waits until each has the other as a peer.
func (k *Kit) Pair(a, b string, opts ...NodeOption) (*nexodus.Node, *nexodus.Node) {
	k.t.Helper()
	na, nb := k.Up(a, opts...), k.Up(b, opts...)
	WaitPeer(k.t, na, b)
	WaitPeer(k.t, nb, a)
	return na, nb
}

// peer returns n's peer with that hostname.
func peer(n *nexodus.Node, hostname string) (nexodus.Peer, bool) {
	for _, p := range n.Peers() {
		if p.Hostname == hostname {
			return p, true
		}
	}
	return nexodus.Peer{}, false
}

// WaitPeer waits until n has a peer named hostname and returns it.
func WaitPeer(t testing.TB, n *nexodus.Node, hostname string) nexodus.Peer {
	t.Helper()
	return WaitFor(t, fmt.Sprintf("%s to have peer %s", n.Status().Hostname, hostname), func() (nexodus.Peer, bool) {
		return peer(n, hostname)
	})
}

// WaitPath waits until n reaches its peer hostname over a path of the given kind (a fresh
// WireGuard session that goes direct or through a relay) and returns the peer.
func WaitPath(t testing.TB, n *nexodus.Node, hostname string, path nexodus.PathType) nexodus.Peer {
	t.Helper()
	return WaitFor(t, fmt.Sprintf("%s to reach %s %s", n.Status().Hostname, hostname, path), func() (nexodus.Peer, bool) {
		p, ok := peer(n, hostname)
		return p, ok && p.Path == path
	})
}

// WaitFor polls cond until it reports true, and returns its value; after Timeout it fails the
// test naming what it waited for.
func WaitFor[T any](t testing.TB, what string, cond func() (T, bool)) T {
	t.Helper()
	var v T
	require.Eventually(t, func() bool {
		got, ok := cond()
		if ok {
			v = got
		}
		return ok
	}, Timeout, 20*time.Millisecond, "timed out waiting for %s", what)
	return v
}

// DropDirect takes the given running Nodes off their direct paths: from now on they reach
// their peers only through the relay, as when a firewall starts dropping UDP between them.
// Connections stay up across the switch. The Nodes need the Kit's relay.
func DropDirect(t testing.TB, nodes ...*nexodus.Node) {
	t.Helper()
	forceRelay(t, "DropDirect", true, nodes)
}

// RestoreDirect undoes DropDirect: the Nodes look for direct paths again.
func RestoreDirect(t testing.TB, nodes ...*nexodus.Node) {
	t.Helper()
	forceRelay(t, "RestoreDirect", false, nodes)
}

func forceRelay(t testing.TB, what string, on bool, nodes []*nexodus.Node) {
	t.Helper()
	for _, n := range nodes {
		e := engine.FromNode(n)
		require.NotNil(t, e, "%s: node %s is not running", what, n.Hostname)
		e.SetForceRelay(on)
	}
}
