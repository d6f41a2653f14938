package engine

import (
	"maps"
	"slices"
	"strings"

	"github.com/nexodus-sdk/nexodus/api"
)

// PeerMap is what the control plane told a node about its organization: its own device record
// and its peers by device ID. It is a value: Apply returns a new one and never changes the old,
// so a snapshot taken under a lock stays valid after the lock is released.
type PeerMap struct {
	Self  api.Device
	Peers map[string]api.Device
	// Removed is set once the coordinator deleted this node's own device.
	Removed bool
}

// ChangeKind says what happened to one peer in an Apply.
type ChangeKind int

// Kinds of [Change].
const (
	PeerAdded ChangeKind = iota + 1
	PeerUpdated
	PeerRemoved
)

// Change is one peer that joined, changed (in anything a peer cares about) or left.
type Change struct {
	Kind   ChangeKind
	Device api.Device
}

// Delta is what one event did to a PeerMap.
type Delta struct {
	// Peers are the peer changes, ordered by device ID (removals last), for a stable
	// callback order.
	Peers []Change
	// Moved: this node's own tunnel addresses changed (it moved organization); the tunnel must
	// be rebuilt on the new ones.
	Moved bool
}

// IsPeerEvent reports whether an event is about the device list (and so goes through Apply)
// rather than signaling or relay configuration.
func IsPeerEvent(t string) bool {
	return t == api.EventSync || t == api.EventDeviceAdded || t == api.EventDeviceUpdated || t == api.EventDeviceRemoved
}

// Apply folds one event into the map. Events that are not about devices leave it unchanged.
// Devices of another organization than this node's are never taken as peers, and neither is
// this node's own device. Once the node's own device is removed the map is final: later events
// change nothing.
func (m PeerMap) Apply(ev api.Event) (PeerMap, Delta) {
	if m.Removed {
		return m, Delta{}
	}
	next := PeerMap{Self: m.Self, Removed: m.Removed}
	switch ev.Type {
	case api.EventSync:
		next.Peers = make(map[string]api.Device, len(ev.Devices))
		for _, d := range ev.Devices {
			if d.ID == m.Self.ID {
				next.Self = d
			}
		}
		for _, d := range ev.Devices {
			if d.ID != next.Self.ID && d.OrganizationID == next.Self.OrganizationID {
				next.Peers[d.ID] = d
			}
		}
	case api.EventDeviceAdded, api.EventDeviceUpdated:
		next.Peers = maps.Clone(m.Peers)
		if next.Peers == nil {
			next.Peers = map[string]api.Device{}
		}
		switch d := ev.Device; {
		case d == nil:
		case d.ID == m.Self.ID:
			next.Self = *d
			// Moved to another organization: the old one's devices are no peers any more
			// (the sync that follows a move brings the new ones).
			maps.DeleteFunc(next.Peers, func(_ string, p api.Device) bool { return p.OrganizationID != d.OrganizationID })
		case d.OrganizationID == m.Self.OrganizationID:
			next.Peers[d.ID] = *d
		default:
			// A device that left for another organization is no peer any more.
			delete(next.Peers, d.ID)
		}
	case api.EventDeviceRemoved:
		next.Peers = maps.Clone(m.Peers)
		if next.Peers == nil {
			next.Peers = map[string]api.Device{}
		}
		if d := ev.Device; d != nil {
			if d.ID == m.Self.ID && d.OrganizationID == m.Self.OrganizationID {
				next.Removed = true
				clear(next.Peers)
			}
			delete(next.Peers, d.ID)
		}
	default:
		return m, Delta{}
	}
	return next, Delta{
		Peers: diff(m.Peers, next.Peers),
		Moved: m.Self.TunnelIPv4 != next.Self.TunnelIPv4 || m.Self.TunnelIPv6 != next.Self.TunnelIPv6,
	}
}

// diff lists what changed from before to after.
func diff(before, after map[string]api.Device) []Change {
	var out []Change
	for _, id := range slices.Sorted(maps.Keys(after)) {
		d := after[id]
		old, ok := before[id]
		switch {
		case !ok:
			out = append(out, Change{Kind: PeerAdded, Device: d})
		case !SameDevice(old, d):
			out = append(out, Change{Kind: PeerUpdated, Device: d})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[id]; !ok {
			out = append(out, Change{Kind: PeerRemoved, Device: before[id]})
		}
	}
	return out
}

// SameDevice reports whether two records of one device agree in everything a peer cares about.
func SameDevice(a, b api.Device) bool {
	return a.Hostname == b.Hostname && a.PublicKey == b.PublicKey &&
		a.TunnelIPv4 == b.TunnelIPv4 && a.TunnelIPv6 == b.TunnelIPv6 &&
		a.Online == b.Online && a.SymmetricNAT == b.SymmetricNAT &&
		slices.Equal(a.Endpoints, b.Endpoints) && slices.Equal(a.ChildPrefixes, b.ChildPrefixes)
}

// Lookup finds a peer, or this node itself, by hostname (case-insensitive, a trailing dot
// allowed).
func (m PeerMap) Lookup(hostname string) (api.Device, bool) {
	if hostnameEqual(hostname, m.Self.Hostname) {
		return m.Self, true
	}
	for _, d := range m.Peers {
		if hostnameEqual(hostname, d.Hostname) {
			return d, true
		}
	}
	return api.Device{}, false
}

func hostnameEqual(a, b string) bool {
	return b != "" && strings.EqualFold(strings.TrimSuffix(a, "."), b)
}
