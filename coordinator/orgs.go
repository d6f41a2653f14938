package coordinator

import (
	"context"
	"errors"
	"net/http"
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

func (s *Server) handleCreateOrg(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	var req api.CreateOrganizationRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	if err := validName("name", req.Name); err != nil {
		return err
	}
	if err := validDescription(req.Description); err != nil {
		return err
	}
	var cidr netip.Prefix
	if req.IPv4CIDR != "" {
		var err error
		if cidr, err = parseOrgCIDR(req.IPv4CIDR); err != nil {
			return err
		}
	}
	var o store.Organization
	err := s.store.Tx(r.Context(), func(tx store.Tx) error {
		var err error
		o, err = s.newOrganization(r.Context(), tx, p.UserID, req.Name, req.Description, cidr, false)
		return err
	})
	if err != nil {
		return err
	}
	s.log.Info("organization created", "org_id", o.ID, "name", o.Name, "owner_id", p.UserID)
	writeJSON(w, http.StatusCreated, apiOrg(o))
	return nil
}

func (s *Server) handleListOrgs(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	var out []api.Organization
	err := s.store.Tx(r.Context(), func(tx store.Tx) error {
		os, err := tx.ListOrganizationsForUser(r.Context(), p.UserID)
		if err != nil {
			return err
		}
		out = make([]api.Organization, 0, len(os))
		for _, o := range os {
			out = append(out, apiOrg(o))
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// pathID reads and validates the path parameter name.
func pathID(r *http.Request, name, what string) (string, error) {
	id := r.PathValue(name)
	return id, checkID(what, id)
}

func (s *Server) handleGetOrg(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "organization id")
	if err != nil {
		return err
	}
	var o store.Organization
	err = s.store.Tx(r.Context(), func(tx store.Tx) error {
		o, _, err = memberOf(r.Context(), tx, id, p.UserID)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, apiOrg(o))
	return nil
}

func (s *Server) handleDeleteOrg(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "organization id")
	if err != nil {
		return err
	}
	var devices []store.Device
	err = s.store.Tx(r.Context(), func(tx store.Tx) error {
		o, _, err := ownerOf(r.Context(), tx, id, p.UserID)
		if err != nil {
			return err
		}
		if o.Personal {
			return errorf(ErrForbidden, "a personal organization cannot be deleted")
		}
		if devices, err = tx.ListDevices(r.Context(), id); err != nil {
			return err
		}
		return tx.DeleteOrganization(r.Context(), id)
	})
	if err != nil {
		return err
	}
	for _, d := range devices {
		s.hub.forgetEphemeral(d.ID)
	}
	s.hub.broadcast() // streams of the organization re-check and end
	s.log.Info("organization deleted", "org_id", id, "by", p.UserID, "devices", len(devices))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleListMembers(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "organization id")
	if err != nil {
		return err
	}
	var out []api.Member
	err = s.store.Tx(r.Context(), func(tx store.Tx) error {
		if _, _, err := memberOf(r.Context(), tx, id, p.UserID); err != nil {
			return err
		}
		ms, err := tx.ListMembers(r.Context(), id)
		if err != nil {
			return err
		}
		out = make([]api.Member, 0, len(ms))
		for _, m := range ms {
			out = append(out, apiMember(m))
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleRemoveMember removes a member: an owner may remove anybody but the organization's
// creator (OwnerID); any member may remove themself (leave). The removed user's devices in the
// organization are deleted, each with a device.removed event.
func (s *Server) handleRemoveMember(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "organization id")
	if err != nil {
		return err
	}
	uid, err := pathID(r, "user_id", "user id")
	if err != nil {
		return err
	}
	var removed []string
	err = s.store.Tx(r.Context(), func(tx store.Tx) error {
		removed = nil
		o, me, err := memberOf(r.Context(), tx, id, p.UserID)
		if err != nil {
			return err
		}
		if uid != p.UserID && me.Role != api.RoleOwner {
			return errorf(ErrForbidden, "only an owner may remove other members")
		}
		if _, err := tx.GetMember(r.Context(), id, uid); err != nil {
			return notFound(err, "member not found")
		}
		if uid == o.OwnerID {
			return errorf(ErrForbidden, "the organization's owner cannot be removed")
		}
		ds, err := tx.ListDevices(r.Context(), id)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.OwnerID != uid {
				continue
			}
			if err := s.deleteDeviceTx(r.Context(), tx, d); err != nil {
				return err
			}
			removed = append(removed, d.ID)
		}
		return notFound(tx.RemoveMember(r.Context(), id, uid), "member not found")
	})
	if err != nil {
		return err
	}
	for _, d := range removed {
		s.hub.forgetEphemeral(d)
	}
	s.hub.broadcast() // the removed member's streams re-check and end
	s.log.Info("member removed", "org_id", id, "user_id", uid, "by", p.UserID, "devices_deleted", len(removed))
	w.WriteHeader(http.StatusNoContent)
	return nil
}
