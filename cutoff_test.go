package nexodus_test

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/nexodustest"
)

// closed reports whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// A node whose device is deleted stops for good and says why: Done closes, Err and every Dial
// and Listen wrap ErrDeviceRemoved, Status shows it and it has no peers left.
func TestDeletedDeviceCutsNodeOff(t *testing.T) {
	kit := nexodustest.New(t, nexodustest.WithoutRelay())
	a, doomed := kit.Pair("a", "doomed")
	assert.False(t, closed(doomed.Done()))
	require.NoError(t, doomed.Err())

	require.NoError(t, kit.User.Client.DeleteDevice(kit.Context(), doomed.Status().DeviceID))
	require.Eventually(t, func() bool { return closed(doomed.Done()) }, nexodustest.Timeout, 10*time.Millisecond, "doomed to stop")
	require.ErrorIs(t, doomed.Err(), nexodus.ErrDeviceRemoved)
	require.ErrorIs(t, doomed.Err(), nexodus.ErrCutOff)

	_, err := doomed.Dial(kit.Context(), "tcp", "a:7000")
	require.ErrorIs(t, err, nexodus.ErrDeviceRemoved)
	_, err = doomed.Listen("tcp", ":7000")
	require.ErrorIs(t, err, nexodus.ErrDeviceRemoved)
	st := doomed.Status()
	assert.Contains(t, st.Stopped, "removed")
	assert.Empty(t, st.Peers)
	assert.False(t, st.ControlConnected)

	require.Eventually(t, func() bool { return len(a.Peers()) == 0 }, nexodustest.Timeout, 10*time.Millisecond)
	require.NoError(t, doomed.Close())
	require.ErrorIs(t, doomed.Err(), nexodus.ErrDeviceRemoved, "Close keeps the first reason")
}

// Deleting an organization emits no device events; the coordinator ends its nodes' streams
// with the reason, and they stop saying so.
func TestDeletedOrganizationCutsNodeOff(t *testing.T) {
	kit := nexodustest.New(t, nexodustest.WithoutRelay())
	org, key := kit.NewOrganization(kit.User, "doomed-org")
	n := kit.Up("member", nexodustest.WithAuthKey(key))
	require.NoError(t, kit.User.Client.DeleteOrganization(kit.Context(), org))
	require.Eventually(t, func() bool { return closed(n.Done()) }, nexodustest.Timeout, 10*time.Millisecond, "member to stop")
	require.ErrorIs(t, n.Err(), nexodus.ErrOrganizationDeleted)
	require.ErrorIs(t, n.Err(), nexodus.ErrDeviceRemoved)
	assert.Equal(t, "nexodus: cut off by the coordinator: the device was removed with its organization", n.Err().Error())
	assert.Contains(t, n.Status().Stopped, "organization")
}

// Deleting the user who registered a node takes its device with them: the node says so.
func TestDeletedUserCutsNodeOff(t *testing.T) {
	kit := nexodustest.New(t, nexodustest.WithoutRelay())
	carol := kit.NewUser("carol")
	n := kit.Up("carols", nexodustest.WithAuthKey(kit.RegKey(carol, "")))
	require.NoError(t, kit.Admin().DeleteUser(kit.Context(), carol.ID))
	require.Eventually(t, func() bool { return closed(n.Done()) }, nexodustest.Timeout, 10*time.Millisecond, "carol's node to stop")
	require.ErrorIs(t, n.Err(), nexodus.ErrUserDeleted)
	require.ErrorIs(t, n.Err(), nexodus.ErrDeviceRemoved)
}

// A Node's Err after Close is net.ErrClosed, and Done is closed even for a node never started.
func TestDoneAfterClose(t *testing.T) {
	n := &nexodus.Node{ControlURL: "http://127.0.0.1:1", AuthKey: "x", Hostname: "never"}
	done := n.Done()
	require.NoError(t, n.Err())
	require.NoError(t, n.Close())
	assert.True(t, closed(done))
	require.ErrorIs(t, n.Err(), net.ErrClosed)
}

// A tunnel address that is no device of the organization fails at once with ErrUnknownPeer
// (it used to wait for the dial's deadline); one inside a peer's routed network dials on.
func TestDialToNoPeerAddressFailsAtOnce(t *testing.T) {
	kit := nexodustest.New(t, nexodustest.WithoutRelay())
	a, _ := kit.Pair("a", "b")
	bob := kit.NewUser("bob")
	stranger := kit.Up("stranger", nexodustest.WithAuthKey(kit.RegKey(bob, "")))

	ctx, cancel := context.WithTimeout(kit.Context(), time.Minute)
	defer cancel()
	for _, addr := range []string{
		net.JoinHostPort(stranger.Status().TunnelIPv4.String(), "80"), // another organization's device
		"100.127.255.254:80",
		"[fd00:dead::1]:80",
	} {
		_, err := a.Dial(ctx, "tcp", addr)
		require.ErrorIs(t, err, nexodus.ErrUnknownPeer, addr)
	}
	require.NoError(t, ctx.Err(), "the dials waited for their deadline")
}

// Up against a coordinator that accepts connections and never answers returns an error once
// StartTimeout has passed, and Close during such an Up makes it return at once.
func TestStartAgainstSilentCoordinator(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	url := "http://" + ln.Addr().String()

	n := &nexodus.Node{ControlURL: url, AuthKey: "nxk_a.b", Hostname: "patient", StartTimeout: 500 * time.Millisecond}
	defer n.Close()
	_, err = n.Up(context.Background())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "no answer from the coordinator")

	hung := &nexodus.Node{ControlURL: url, AuthKey: "nxk_a.b", Hostname: "hung", StartTimeout: time.Hour}
	upErr := make(chan error, 1)
	go func() {
		_, err := hung.Up(context.Background())
		upErr <- err
	}()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(held) >= 2
	}, nexodustest.Timeout, 10*time.Millisecond, "the hung node to connect")
	require.NoError(t, hung.Close())
	select {
	case err := <-upErr:
		require.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(nexodustest.Timeout):
		t.Fatal("Up did not return after Close")
	}
}

// OnPeerChange tells path changes: the first direct path, the move to the relay, and the relay's
// address as the peer's endpoint.
func TestOnPeerChangeTellsPaths(t *testing.T) {
	kit := nexodustest.New(t)
	var mu sync.Mutex
	var events []nexodus.PeerEvent
	watch := func(n *nexodus.Node) {
		n.OnPeerChange = func(ev nexodus.PeerEvent) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, ev)
		}
	}
	a := kit.Up("a", watch)
	b := kit.Up("b")
	saw := func(what string, match func(nexodus.PeerEvent) bool) nexodus.PeerEvent {
		return nexodustest.WaitFor(t, what, func() (nexodus.PeerEvent, bool) {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range events {
				if match(ev) {
					return ev, true
				}
			}
			return nexodus.PeerEvent{}, false
		})
	}
	saw("b added", func(ev nexodus.PeerEvent) bool { return ev.Type == nexodus.PeerAdded && ev.Peer.Hostname == "b" })
	saw("a direct pair to b", func(ev nexodus.PeerEvent) bool {
		return ev.Type == nexodus.PeerPathChanged && ev.Peer.Hostname == "b" && ev.Peer.LocalCandidate == nexodus.CandidateHost
	})

	nexodustest.DropDirect(t, a, b)
	ev := saw("a relayed pair to b", func(ev nexodus.PeerEvent) bool {
		return ev.Type == nexodus.PeerPathChanged && ev.Peer.LocalCandidate == nexodus.CandidateRelay
	})
	relay := kit.Relay.Addrs().UDP[0].Addr()
	p := nexodustest.WaitPath(t, a, "b", nexodus.PathRelayed)
	assert.Equal(t, relay, p.Endpoint.Addr(), "a relayed peer's endpoint is the relay")
	assert.Equal(t, netip.Addr(relay), ev.Peer.Endpoint.Addr())
}
