package nexodustest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/nexodustest"
)

// echo serves lines back on n:port until the listener closes with the node.
func echo(t *testing.T, n *nexodus.Node, port string) {
	ln, err := n.Listen("tcp", ":"+port)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(nexodustest.Timeout)))
	_, err := fmt.Fprintln(c, line)
	require.NoError(t, err)
	got, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, line+"\n", got)
}

// The kit's Nodes reach each other directly, DropDirect moves a live connection onto the relay
// and RestoreDirect back.
func TestKitPathsAndDropDirect(t *testing.T) {
	kit := nexodustest.New(t)
	srv, cli := kit.Pair("srv", "cli")
	echo(t, srv, "7000")
	nexodustest.WaitPath(t, cli, "srv", nexodus.PathDirect)

	c, err := cli.Dial(kit.Context(), "tcp", "srv:7000")
	require.NoError(t, err)
	defer c.Close()
	r := bufio.NewReader(c)
	roundTrip(t, c, r, "direct")

	nexodustest.DropDirect(t, srv, cli)
	p := nexodustest.WaitFor(t, "a relayed path that carries data", func() (nexodus.Peer, bool) {
		p, ok := peerOf(cli, "srv")
		return p, ok && p.Path == nexodus.PathRelayed && p.LocalCandidate == nexodus.CandidateRelay
	})
	assert.Equal(t, nexodus.TraversalConnected, p.Traversal.State)
	roundTrip(t, c, r, "relayed, same connection")
	assert.Positive(t, kit.Relay.Stats().AllocationsTotal)

	nexodustest.RestoreDirect(t, srv, cli)
	nexodustest.WaitFor(t, "the direct path back", func() (nexodus.Peer, bool) {
		p, ok := peerOf(cli, "srv")
		return p, ok && p.Path == nexodus.PathDirect && p.LocalCandidate != nexodus.CandidateRelay
	})
	roundTrip(t, c, r, "direct again")

	devs, err := kit.User.Client.ListDevicesInOrganization(kit.Context(), kit.User.OrgID)
	require.NoError(t, err)
	assert.Len(t, devs, 2)
}

func peerOf(n *nexodus.Node, hostname string) (nexodus.Peer, bool) {
	for _, p := range n.Peers() {
		if p.Hostname == hostname {
			return p, true
		}
	}
	return nexodus.Peer{}, false
}

// A Node made with ForceRelay starts on the relay; another user's Node is no peer of the
// kit's; a restarted coordinator takes the Nodes back.
func TestKitForceRelayUsersAndRestart(t *testing.T) {
	kit := nexodustest.New(t)
	a := kit.Up("a", nexodustest.ForceRelay())
	b := kit.Up("b", nexodustest.ForceRelay())
	nexodustest.WaitPath(t, a, "b", nexodus.PathRelayed)

	bob := kit.NewUser("bob")
	stranger := kit.Up("stranger", nexodustest.WithAuthKey(kit.RegKey(bob, "")))
	_, ok := peerOf(stranger, "a")
	assert.False(t, ok, "a node of another organization sees a")

	kit.RestartCoordinator()
	nexodustest.WaitFor(t, "b back on the control plane", func() (bool, bool) {
		return true, b.Status().ControlConnected
	})
	late := kit.Up("late")
	nexodustest.WaitPeer(t, a, "late")
	require.NoError(t, late.Close())
}

// The kit closes what it made: nothing is left once the test's cleanups have run (the leak
// check runs inside the subtest's cleanup and would fail it).
func TestKitLeavesNothing(t *testing.T) {
	ok := t.Run("inner", func(t *testing.T) {
		kit := nexodustest.New(t, nexodustest.WithoutRelay())
		kit.Pair("x", "y")
		ctx, cancel := context.WithTimeout(kit.Context(), time.Second)
		defer cancel()
		_, err := kit.Node("never-started").Dial(ctx, "tcp", "x:1")
		require.Error(t, err)
	})
	assert.True(t, ok)
}
