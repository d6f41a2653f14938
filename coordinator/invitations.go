package coordinator

// Invitations: an owner invites a user into an organization for a limited time; the invitee
// accepts or declines; an owner revokes. Only a pending invitation can be acted on.

import (
	"context"
	"errors"
	"sort"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// invitationStatus derives the status clients see: a pending invitation past its expiry is
// expired.
func (s *Server) invitationStatus(inv store.Invitation) string {
	if inv.Status == api.InvitationPending && !s.now().Before(inv.ExpiresAt) {
		return api.InvitationExpired
	}
	return inv.Status
}

// requirePending fails with 410 gone unless the invitation can still be acted on.
func (s *Server) requirePending(inv store.Invitation) error {
	if st := s.invitationStatus(inv); st != api.InvitationPending {
		return errorf(ErrGone, "invitation is %s", st)
	}
	return nil
}

// apiInvitation fills in the organization and user names.
func (s *Server) apiInvitation(ctx context.Context, tx store.Tx, inv store.Invitation) (api.Invitation, error) {
	out := api.Invitation{
		ID: inv.ID, OrganizationID: inv.OrganizationID, UserID: inv.UserID, Role: inv.Role,
		InviterID: inv.InviterID, Status: s.invitationStatus(inv), ExpiresAt: inv.ExpiresAt,
		CreatedAt: inv.CreatedAt,
	}
	o, err := tx.GetOrganization(ctx, inv.OrganizationID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return out, err
	}
	out.OrganizationName = o.Name
	u, err := tx.GetUser(ctx, inv.UserID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return out, err
	}
	out.Username = u.Username
	return out, nil
}

func (s *Server) createInvitation(ctx context.Context, p Principal, req api.CreateInvitationRequest) (api.Invitation, error) {
	if err := checkID("organization_id", req.OrganizationID); err != nil {
		return api.Invitation{}, err
	}
	if err := validName("username", req.Username); err != nil {
		return api.Invitation{}, err
	}
	if req.Role == "" {
		req.Role = api.RoleMember
	}
	if req.Role != api.RoleMember && req.Role != api.RoleOwner {
		return api.Invitation{}, errorf(ErrBadRequest, "role must be %q or %q", api.RoleMember, api.RoleOwner)
	}
	ttl, err := parseExpiresIn(req.ExpiresInSeconds, s.cfg.InvitationTTL)
	if err != nil {
		return api.Invitation{}, err
	}
	out, err := inTx(ctx, s.store, func(tx store.Tx) (api.Invitation, error) {
		if _, _, err := ownerOf(ctx, tx, req.OrganizationID, p.UserID); err != nil {
			return api.Invitation{}, err
		}
		u, err := tx.GetUserByUsername(ctx, req.Username)
		if err != nil {
			return api.Invitation{}, notFound(err, "user not found")
		}
		if err := s.invitable(ctx, tx, req.OrganizationID, u); err != nil {
			return api.Invitation{}, err
		}
		now := s.now()
		inv := store.Invitation{
			ID: newID(), OrganizationID: req.OrganizationID, UserID: u.ID, Role: req.Role,
			InviterID: p.UserID, Status: api.InvitationPending, ExpiresAt: now.Add(ttl), CreatedAt: now,
		}
		if err := tx.CreateInvitation(ctx, inv); err != nil {
			return api.Invitation{}, conflict(err, "invitation exists")
		}
		return s.apiInvitation(ctx, tx, inv)
	})
	if err != nil {
		return api.Invitation{}, err
	}
	s.log.Info("invitation created", "invitation_id", out.ID, "org_id", out.OrganizationID, "user_id", out.UserID)
	return out, nil
}

// invitable checks that u is neither a member of the organization nor holds a pending
// invitation to it.
func (s *Server) invitable(ctx context.Context, tx store.Tx, orgID string, u store.User) error {
	if _, err := tx.GetMember(ctx, orgID, u.ID); err == nil {
		return errorf(ErrConflict, "%s is already a member", u.Username)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	invs, err := tx.ListInvitationsForOrganization(ctx, orgID)
	if err != nil {
		return err
	}
	for _, inv := range invs {
		if inv.UserID == u.ID && s.invitationStatus(inv) == api.InvitationPending {
			return errorf(ErrConflict, "%s already has a pending invitation (%s)", u.Username, inv.ID)
		}
	}
	return nil
}

// listInvitations lists the caller's own invitations and those of the organizations they own,
// oldest first.
func (s *Server) listInvitations(ctx context.Context, p Principal) ([]api.Invitation, error) {
	return inTx(ctx, s.store, func(tx store.Tx) ([]api.Invitation, error) {
		mine, err := tx.ListInvitationsForUser(ctx, p.UserID)
		if err != nil {
			return nil, err
		}
		orgs, err := ownedOrgs(ctx, tx, p.UserID)
		if err != nil {
			return nil, err
		}
		owned, err := perOrg(ctx, orgs, tx.ListInvitationsForOrganization, func(inv store.Invitation) store.Invitation { return inv })
		if err != nil {
			return nil, err
		}
		all := append(mine, owned...)
		sort.SliceStable(all, func(i, j int) bool {
			if !all[i].CreatedAt.Equal(all[j].CreatedAt) {
				return all[i].CreatedAt.Before(all[j].CreatedAt)
			}
			return all[i].ID < all[j].ID
		})
		out := make([]api.Invitation, 0, len(all))
		seen := map[string]bool{}
		for _, inv := range all {
			if seen[inv.ID] {
				continue
			}
			seen[inv.ID] = true
			a, err := s.apiInvitation(ctx, tx, inv)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
		return out, nil
	})
}

// invitation loads the invitation id as the caller may see it and, inside the same
// transaction, runs act on it (when set); it answers the invitation as act leaves it.
func (s *Server) invitation(ctx context.Context, p Principal, id string, act func(tx store.Tx, inv *store.Invitation, invitee bool) error) (api.Invitation, error) {
	return inTx(ctx, s.store, func(tx store.Tx) (api.Invitation, error) {
		inv, invitee, err := loadInvitation(ctx, tx, id, p.UserID)
		if err != nil {
			return api.Invitation{}, err
		}
		if act != nil {
			if err := act(tx, &inv, invitee); err != nil {
				return api.Invitation{}, err
			}
		}
		return s.apiInvitation(ctx, tx, inv)
	})
}

func (s *Server) getInvitation(ctx context.Context, p Principal, id string) (api.Invitation, error) {
	return s.invitation(ctx, p, id, nil)
}

func (s *Server) acceptInvitation(ctx context.Context, p Principal, id string) (api.Invitation, error) {
	return s.answerInvitation(ctx, p, id, true)
}

func (s *Server) declineInvitation(ctx context.Context, p Principal, id string) (api.Invitation, error) {
	return s.answerInvitation(ctx, p, id, false)
}

// answerInvitation accepts or declines an invitation as its invitee.
func (s *Server) answerInvitation(ctx context.Context, p Principal, id string, accept bool) (api.Invitation, error) {
	out, err := s.invitation(ctx, p, id, func(tx store.Tx, inv *store.Invitation, invitee bool) error {
		if !invitee {
			return errorf(ErrForbidden, "only the invitee may answer an invitation")
		}
		if err := s.requirePending(*inv); err != nil {
			return err
		}
		status := api.InvitationDeclined
		if accept {
			status = api.InvitationAccepted
			err := tx.AddMember(ctx, store.Membership{OrganizationID: inv.OrganizationID, UserID: p.UserID, Role: inv.Role, JoinedAt: s.now()})
			if err != nil {
				return conflict(notFound(err, "organization not found"), "already a member of the organization")
			}
		}
		inv.Status = status
		return tx.SetInvitationStatus(ctx, id, status)
	})
	if err != nil {
		return api.Invitation{}, err
	}
	s.log.Info("invitation answered", "invitation_id", id, "user_id", p.UserID, "status", out.Status)
	return out, nil
}

// revokeInvitation lets an owner of the organization revoke a pending invitation.
func (s *Server) revokeInvitation(ctx context.Context, p Principal, id string) (noContent, error) {
	err := s.store.Tx(ctx, func(tx store.Tx) error {
		inv, err := tx.GetInvitation(ctx, id)
		if err != nil {
			return notFound(err, "invitation not found")
		}
		m, err := tx.GetMember(ctx, inv.OrganizationID, p.UserID)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) && inv.UserID == p.UserID {
				return errorf(ErrForbidden, "the invitee declines, only an owner revokes")
			}
			return notFound(err, "invitation not found")
		}
		if m.Role != api.RoleOwner {
			return errorf(ErrForbidden, "only an owner may revoke an invitation")
		}
		if err := s.requirePending(inv); err != nil {
			return err
		}
		return tx.SetInvitationStatus(ctx, id, api.InvitationRevoked)
	})
	if err != nil {
		return noContent{}, err
	}
	s.log.Info("invitation revoked", "invitation_id", id, "by", p.UserID)
	return noContent{}, nil
}
