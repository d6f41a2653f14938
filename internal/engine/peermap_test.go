package engine

import (
	"fmt"
	"maps"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/nexodus-sdk/nexodus/api"
)

func dev(id, org, host, ip string) api.Device {
	return api.Device{ID: id, OrganizationID: org, Hostname: host, TunnelIPv4: ip, PublicKey: "k-" + id}
}

func TestPeerMapApply(t *testing.T) {
	self := dev("self", "o1", "me", "100.64.0.1")
	a, b := dev("a", "o1", "a", "100.64.0.2"), dev("b", "o1", "b", "100.64.0.3")
	aOnline := a
	aOnline.Online = true
	other := dev("x", "o2", "x", "100.64.9.9")
	start := PeerMap{Self: self, Peers: map[string]api.Device{"a": a}}

	tests := []struct {
		name        string
		ev          api.Event
		wantPeers   []string
		wantChanges []Change
		wantMoved   bool
		wantRemoved bool
	}{
		{
			name:        "sync replaces the list and skips self and other orgs",
			ev:          api.Event{Type: api.EventSync, Devices: []api.Device{self, b, other}},
			wantPeers:   []string{"b"},
			wantChanges: []Change{{PeerAdded, b}, {PeerRemoved, a}},
		},
		{
			name:        "added",
			ev:          api.Event{Type: api.EventDeviceAdded, Device: &b},
			wantPeers:   []string{"a", "b"},
			wantChanges: []Change{{PeerAdded, b}},
		},
		{
			name:        "updated in a field peers care about",
			ev:          api.Event{Type: api.EventDeviceUpdated, Device: &aOnline},
			wantPeers:   []string{"a"},
			wantChanges: []Change{{PeerUpdated, aOnline}},
		},
		{
			name:      "updated with nothing new is no change",
			ev:        api.Event{Type: api.EventDeviceUpdated, Device: &a},
			wantPeers: []string{"a"},
		},
		{
			name:      "a device of another organization is ignored",
			ev:        api.Event{Type: api.EventDeviceAdded, Device: &other},
			wantPeers: []string{"a"},
		},
		{
			name:        "removed",
			ev:          api.Event{Type: api.EventDeviceRemoved, Device: &a},
			wantChanges: []Change{{PeerRemoved, a}},
		},
		{
			name:        "own removal empties the map",
			ev:          api.Event{Type: api.EventDeviceRemoved, Device: &self},
			wantChanges: []Change{{PeerRemoved, a}},
			wantRemoved: true,
		},
		{
			name: "own update with new addresses is a move",
			ev: api.Event{Type: api.EventDeviceUpdated, Device: func() *api.Device {
				d := self
				d.TunnelIPv4 = "100.64.5.5"
				return &d
			}()},
			wantPeers: []string{"a"},
			wantMoved: true,
		},
		{
			name:      "signals do not touch the map",
			ev:        api.Event{Type: api.EventSignal, Signal: &api.Signal{From: "a"}},
			wantPeers: []string{"a"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := maps.Clone(start.Peers)
			next, delta := start.Apply(tc.ev)
			assert.Equal(t, before, start.Peers, "Apply changed the old map")
			assert.ElementsMatch(t, tc.wantPeers, keys(next.Peers))
			assert.Equal(t, tc.wantChanges, delta.Peers)
			assert.Equal(t, tc.wantMoved, delta.Moved)
			assert.Equal(t, tc.wantRemoved, next.Removed)
		})
	}
}

func TestPeerMapLookup(t *testing.T) {
	m := PeerMap{Self: dev("s", "o", "Me", "100.64.0.1"), Peers: map[string]api.Device{"a": dev("a", "o", "db", "100.64.0.2")}}
	d, ok := m.Lookup("DB.")
	require.True(t, ok)
	assert.Equal(t, "a", d.ID)
	d, ok = m.Lookup("me")
	require.True(t, ok)
	assert.Equal(t, "s", d.ID)
	_, ok = m.Lookup("nobody")
	assert.False(t, ok)
	_, ok = PeerMap{}.Lookup("")
	assert.False(t, ok, "an empty hostname matches nothing")
}

func keys(m map[string]api.Device) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	return out
}

// genEvent draws device events over a small pool of ids, two organizations and the node's own
// device, so that additions, updates, removals, moves and syncs all collide.
func genEvent(t *rapid.T) api.Event {
	genDev := func(t *rapid.T, label string) api.Device {
		id := rapid.SampledFrom([]string{"self", "a", "b", "c"}).Draw(t, label+"id")
		return api.Device{
			ID:             id,
			OrganizationID: rapid.SampledFrom([]string{"o1", "o2"}).Draw(t, label+"org"),
			Hostname:       id,
			PublicKey:      "k-" + id,
			TunnelIPv4:     fmt.Sprintf("100.64.0.%d", rapid.IntRange(1, 3).Draw(t, label+"ip")),
			Online:         rapid.Bool().Draw(t, label+"online"),
		}
	}
	typ := rapid.SampledFrom([]string{api.EventSync, api.EventDeviceAdded, api.EventDeviceUpdated,
		api.EventDeviceRemoved, api.EventSignal}).Draw(t, "type")
	ev := api.Event{Type: typ}
	switch typ {
	case api.EventSync:
		n := rapid.IntRange(0, 4).Draw(t, "n")
		for i := range n {
			ev.Devices = append(ev.Devices, genDev(t, fmt.Sprint(i)))
		}
	case api.EventSignal:
		ev.Signal = &api.Signal{From: "a"}
	default:
		d := genDev(t, "")
		ev.Device = &d
	}
	return ev
}

// TestPeerMapProperties checks over random event sequences that Apply never changes its input,
// never takes the node itself or another organization's device as a peer, and reports exactly
// the difference between the maps before and after.
func TestPeerMapProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := PeerMap{Self: api.Device{ID: "self", OrganizationID: "o1", Hostname: "self", TunnelIPv4: "100.64.0.1"}}
		for range rapid.IntRange(1, 30).Draw(t, "steps") {
			ev := genEvent(t)
			before := maps.Clone(m.Peers)
			next, delta := m.Apply(ev)
			require.Equal(t, before, m.Peers, "input mutated")

			_, selfIsPeer := next.Peers[next.Self.ID]
			require.False(t, selfIsPeer, "self among peers")
			for _, d := range next.Peers {
				require.Equal(t, next.Self.OrganizationID, d.OrganizationID, "peer of another organization")
			}
			if next.Removed {
				require.Empty(t, next.Peers)
			}
			require.Equal(t, m.Self.TunnelIPv4 != next.Self.TunnelIPv4, delta.Moved)

			// Replaying the delta on the old map gives the new one.
			replay := maps.Clone(m.Peers)
			if replay == nil {
				replay = map[string]api.Device{}
			}
			for _, c := range delta.Peers {
				_, had := replay[c.Device.ID]
				switch c.Kind {
				case PeerAdded:
					require.False(t, had, "added %s twice", c.Device.ID)
					replay[c.Device.ID] = c.Device
				case PeerUpdated:
					require.True(t, had, "updated unknown %s", c.Device.ID)
					replay[c.Device.ID] = c.Device
				case PeerRemoved:
					require.True(t, had, "removed unknown %s", c.Device.ID)
					delete(replay, c.Device.ID)
				}
			}
			for id, d := range next.Peers {
				require.True(t, SameDevice(d, replay[id]), "delta misses a change of %s", id)
			}
			require.Len(t, replay, len(next.Peers))

			// The same event again changes nothing more (events are idempotent).
			_, again := next.Apply(ev)
			require.Empty(t, again.Peers, "second apply of %s changed peers", ev.Type)
			m = next
		}
	})
}
