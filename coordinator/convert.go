package coordinator

import (
	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func apiUser(u store.User) api.User {
	return api.User{ID: u.ID, Username: u.Username, CreatedAt: u.CreatedAt}
}

func apiOrg(o store.Organization) api.Organization {
	return api.Organization{
		ID: o.ID, Name: o.Name, Description: o.Description, OwnerID: o.OwnerID,
		IPv4CIDR: o.IPv4CIDR, IPv6CIDR: o.IPv6CIDR, CreatedAt: o.CreatedAt,
	}
}

func apiMember(m store.Membership) api.Member {
	return api.Member{UserID: m.UserID, Username: m.Username, Role: m.Role, JoinedAt: m.JoinedAt}
}

func apiRegKey(k store.RegKey) api.RegKey {
	return api.RegKey{
		ID: k.ID, OrganizationID: k.OrganizationID, OwnerID: k.OwnerID, Description: k.Description,
		SingleUse: k.SingleUse, Ephemeral: k.Ephemeral, ExpiresAt: k.ExpiresAt, Used: k.Used,
		CreatedAt: k.CreatedAt,
	}
}

// apiDevice converts a stored device; online comes from the hub.
func (s *Server) apiDevice(d store.Device) api.Device {
	eps := make([]api.Endpoint, 0, len(d.Endpoints))
	for _, e := range d.Endpoints {
		eps = append(eps, api.Endpoint{Source: e.Source, Address: e.Address})
	}
	cps := make([]string, 0, len(d.ChildPrefixes))
	cps = append(cps, d.ChildPrefixes...)
	return api.Device{
		ID: d.ID, OrganizationID: d.OrganizationID, OwnerID: d.OwnerID, PublicKey: d.PublicKey,
		Hostname: d.Hostname, TunnelIPv4: d.TunnelIPv4, TunnelIPv6: d.TunnelIPv6,
		Endpoints: eps, SymmetricNAT: d.SymmetricNAT, ChildPrefixes: cps, Ephemeral: d.Ephemeral,
		Online: s.hub.isOnline(d.ID), CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
}

func (s *Server) apiDevices(ds []store.Device) []api.Device {
	out := make([]api.Device, 0, len(ds))
	for _, d := range ds {
		out = append(out, s.apiDevice(d))
	}
	return out
}

func storeEndpoints(eps []api.Endpoint) []store.Endpoint {
	out := make([]store.Endpoint, 0, len(eps))
	for _, e := range eps {
		out = append(out, store.Endpoint{Source: e.Source, Address: e.Address})
	}
	return out
}
