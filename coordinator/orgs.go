package coordinator

// Organizations and their members: creating one (with its address blocks), reading, deleting,
// listing members and removing them (with their devices).

import (
	"context"
	"errors"
	"net/netip"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// newOrganization creates an organization owned by ownerID inside tx; a zero cidr takes a
// block from the pool.
func (s *Server) newOrganization(ctx context.Context, tx store.Tx, ownerID, name, desc string, cidr netip.Prefix, personal bool) (store.Organization, error) {
	if !personal {
		// A username is kept for that user's personal organization. Other names are not
		// unique: a 409 on them would tell who else uses a name, and whoever took a name first
		// would keep a future user from being created under it.
		if _, err := tx.GetUserByUsername(ctx, name); err == nil {
			return store.Organization{}, errorf(ErrConflict, "organization name %q is a username, kept for that user's personal organization", name)
		} else if !errors.Is(err, store.ErrNotFound) {
			return store.Organization{}, err
		}
	}
	orgs, err := tx.ListOrganizations(ctx)
	if err != nil {
		return store.Organization{}, err
	}
	if !cidr.IsValid() {
		if cidr, err = allocOrgIPv4(orgs, s.cfg.IPv4Pool, s.cfg.OrgPrefixLen); err != nil {
			return store.Organization{}, err
		}
	}
	v6, err := allocOrgIPv6(orgs)
	if err != nil {
		return store.Organization{}, err
	}
	now := s.now()
	o := store.Organization{
		ID: newID(), Name: name, Description: desc, OwnerID: ownerID, Personal: personal,
		IPv4CIDR: cidr.String(), IPv6CIDR: v6.String(), CreatedAt: now,
	}
	if err := tx.CreateOrganization(ctx, o); err != nil {
		// Only personal organizations' names are unique, and they are usernames.
		return o, conflict(err, "personal organization %q exists", name)
	}
	if err := tx.AddMember(ctx, store.Membership{OrganizationID: o.ID, UserID: ownerID, Role: api.RoleOwner, JoinedAt: now}); err != nil {
		return o, err
	}
	return o, nil
}

func (s *Server) createOrg(ctx context.Context, p Principal, req api.CreateOrganizationRequest) (api.Organization, error) {
	if err := validName("name", req.Name); err != nil {
		return api.Organization{}, err
	}
	if err := validDescription(req.Description); err != nil {
		return api.Organization{}, err
	}
	var cidr netip.Prefix
	if req.IPv4CIDR != "" {
		var err error
		if cidr, err = parseOrgCIDR(req.IPv4CIDR); err != nil {
			return api.Organization{}, err
		}
	}
	o, err := inTx(ctx, s.store, func(tx store.Tx) (store.Organization, error) {
		return s.newOrganization(ctx, tx, p.UserID, req.Name, req.Description, cidr, false)
	})
	if err != nil {
		return api.Organization{}, err
	}
	s.log.Info("organization created", "org_id", o.ID, "name", o.Name, "owner_id", p.UserID)
	return apiOrg(o), nil
}

func (s *Server) listOrgs(ctx context.Context, p Principal) ([]api.Organization, error) {
	return inTx(ctx, s.store, func(tx store.Tx) ([]api.Organization, error) {
		os, err := tx.ListOrganizationsForUser(ctx, p.UserID)
		return convert(os, apiOrg), err
	})
}

func (s *Server) getOrg(ctx context.Context, p Principal, id string) (api.Organization, error) {
	return inTx(ctx, s.store, func(tx store.Tx) (api.Organization, error) {
		o, _, err := memberOf(ctx, tx, id, p.UserID)
		return apiOrg(o), err
	})
}

// deleteOrg deletes an organization (owners only; not a personal one) with everything in it.
func (s *Server) deleteOrg(ctx context.Context, p Principal, id string) (noContent, error) {
	devices, err := inTx(ctx, s.store, func(tx store.Tx) ([]store.Device, error) {
		o, _, err := ownerOf(ctx, tx, id, p.UserID)
		if err != nil {
			return nil, err
		}
		if o.Personal {
			return nil, errorf(ErrForbidden, "a personal organization cannot be deleted")
		}
		devices, err := tx.ListDevices(ctx, id)
		if err != nil {
			return nil, err
		}
		return devices, tx.DeleteOrganization(ctx, id)
	})
	if err != nil {
		return noContent{}, err
	}
	s.hub.broadcast() // streams of the organization re-check and end
	s.log.Info("organization deleted", "org_id", id, "by", p.UserID, "devices", len(devices))
	return noContent{}, nil
}

func (s *Server) listMembers(ctx context.Context, p Principal, id string) ([]api.Member, error) {
	return inTx(ctx, s.store, func(tx store.Tx) ([]api.Member, error) {
		if _, _, err := memberOf(ctx, tx, id, p.UserID); err != nil {
			return nil, err
		}
		ms, err := tx.ListMembers(ctx, id)
		return convert(ms, apiMember), err
	})
}

// removeMember removes a member: an owner may remove anybody but the organization's creator
// (OwnerID); any member may remove themself (leave). The removed user's devices in the
// organization are deleted, each with a device.removed event.
func (s *Server) removeMember(ctx context.Context, p Principal, id, uid string) error {
	removed, err := inTx(ctx, s.store, func(tx store.Tx) ([]string, error) {
		o, me, err := memberOf(ctx, tx, id, p.UserID)
		if err != nil {
			return nil, err
		}
		if uid != p.UserID && me.Role != api.RoleOwner {
			return nil, errorf(ErrForbidden, "only an owner may remove other members")
		}
		if _, err := tx.GetMember(ctx, id, uid); err != nil {
			return nil, notFound(err, "member not found")
		}
		if uid == o.OwnerID {
			return nil, errorf(ErrForbidden, "the organization's owner cannot be removed")
		}
		ds, err := tx.ListDevices(ctx, id)
		if err != nil {
			return nil, err
		}
		var removed []string
		for _, d := range ds {
			if d.OwnerID != uid {
				continue
			}
			if err := s.deleteDeviceTx(ctx, tx, d, api.ReasonMembershipEnded); err != nil {
				return nil, err
			}
			removed = append(removed, d.ID)
		}
		return removed, notFound(tx.RemoveMember(ctx, id, uid), "member not found")
	})
	if err != nil {
		return err
	}
	s.hub.broadcast() // the removed member's streams re-check and end
	s.log.Info("member removed", "org_id", id, "user_id", uid, "by", p.UserID, "devices_deleted", len(removed))
	return nil
}
