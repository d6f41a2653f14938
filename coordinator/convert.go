package coordinator

// Conversions from store records to the api package's wire types.

import (
	"context"

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
	return api.Device{
		ID: d.ID, OrganizationID: d.OrganizationID, OwnerID: d.OwnerID, PublicKey: d.PublicKey,
		Hostname: d.Hostname, TunnelIPv4: d.TunnelIPv4, TunnelIPv6: d.TunnelIPv6,
		Endpoints: convert(d.Endpoints, func(e store.Endpoint) api.Endpoint { return api.Endpoint(e) }), SymmetricNAT: d.SymmetricNAT, ChildPrefixes: append([]string{}, d.ChildPrefixes...), Ephemeral: d.Ephemeral,
		Online: s.hub.isOnline(d.ID), CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
}

func (s *Server) apiDevices(ds []store.Device) []api.Device { return convert(ds, s.apiDevice) }

func storeEndpoints(eps []api.Endpoint) []store.Endpoint {
	return convert(eps, func(e api.Endpoint) store.Endpoint { return store.Endpoint(e) })
}

// perOrg lists what list returns for each of the organizations, converted with conv, as one
// list (never nil).
func perOrg[S, T any](ctx context.Context, orgs []store.Organization, list func(context.Context, string) ([]S, error), conv func(S) T) ([]T, error) {
	out := []T{}
	for _, o := range orgs {
		items, err := list(ctx, o.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, convert(items, conv)...)
	}
	return out, nil
}

// convert maps a list of records to a list of another type, never nil (JSON "[]", not null).
func convert[S, T any](in []S, f func(S) T) []T {
	out := make([]T, 0, len(in))
	for _, v := range in {
		out = append(out, f(v))
	}
	return out
}
