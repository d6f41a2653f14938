package coordinator

import (
	"context"
	"errors"
	"net/http"
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

func (s *Server) handleCreateInvitation(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	var req api.CreateInvitationRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	if err := checkID("organization_id", req.OrganizationID); err != nil {
		return err
	}
	if err := validName("username", req.Username); err != nil {
		return err
	}
	if req.Role == "" {
		req.Role = api.RoleMember
	}
	if req.Role != api.RoleMember && req.Role != api.RoleOwner {
		return errorf(ErrBadRequest, "role must be %q or %q", api.RoleMember, api.RoleOwner)
	}
	ttl, err := parseExpiresIn(req.ExpiresInSeconds, s.cfg.InvitationTTL)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var out api.Invitation
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		if _, _, err := ownerOf(ctx, tx, req.OrganizationID, p.UserID); err != nil {
			return err
		}
		u, err := tx.GetUserByUsername(ctx, req.Username)
		if err != nil {
			return notFound(err, "user not found")
		}
		if _, err := tx.GetMember(ctx, req.OrganizationID, u.ID); err == nil {
			return errorf(ErrConflict, "%s is already a member", u.Username)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		invs, err := tx.ListInvitationsForOrganization(ctx, req.OrganizationID)
		if err != nil {
			return err
		}
		for _, inv := range invs {
			if inv.UserID == u.ID && s.invitationStatus(inv) == api.InvitationPending {
				return errorf(ErrConflict, "%s already has a pending invitation (%s)", u.Username, inv.ID)
			}
		}
		now := s.now()
		inv := store.Invitation{
			ID: newID(), OrganizationID: req.OrganizationID, UserID: u.ID, Role: req.Role,
			InviterID: p.UserID, Status: api.InvitationPending, ExpiresAt: now.Add(ttl), CreatedAt: now,
		}
		if err := tx.CreateInvitation(ctx, inv); err != nil {
			return conflict(err, "invitation exists")
		}
		out, err = s.apiInvitation(ctx, tx, inv)
		return err
	})
	if err != nil {
		return err
	}
	s.log.Info("invitation created", "invitation_id", out.ID, "org_id", out.OrganizationID, "user_id", out.UserID)
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) handleListInvitations(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	ctx := r.Context()
	var out []api.Invitation
	err := s.store.Tx(ctx, func(tx store.Tx) error {
		seen := map[string]bool{}
		var all []store.Invitation
		mine, err := tx.ListInvitationsForUser(ctx, p.UserID)
		if err != nil {
			return err
		}
		all = append(all, mine...)
		orgs, err := tx.ListOrganizationsForUser(ctx, p.UserID)
		if err != nil {
			return err
		}
		for _, o := range orgs {
			m, err := tx.GetMember(ctx, o.ID, p.UserID)
			if err != nil || m.Role != api.RoleOwner {
				continue
			}
			invs, err := tx.ListInvitationsForOrganization(ctx, o.ID)
			if err != nil {
				return err
			}
			all = append(all, invs...)
		}
		sort.SliceStable(all, func(i, j int) bool {
			if !all[i].CreatedAt.Equal(all[j].CreatedAt) {
				return all[i].CreatedAt.Before(all[j].CreatedAt)
			}
			return all[i].ID < all[j].ID
		})
		out = make([]api.Invitation, 0, len(all))
		for _, inv := range all {
			if seen[inv.ID] {
				continue
			}
			seen[inv.ID] = true
			a, err := s.apiInvitation(ctx, tx, inv)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// loadInvitation loads an invitation the caller may see: its invitee, or an owner of its
// organization. Members of the organization get 403; anybody else 404.
func loadInvitation(ctx context.Context, tx store.Tx, id, userID string) (inv store.Invitation, invitee bool, err error) {
	inv, err = tx.GetInvitation(ctx, id)
	if err != nil {
		return inv, false, notFound(err, "invitation not found")
	}
	if inv.UserID == userID {
		return inv, true, nil
	}
	m, err := tx.GetMember(ctx, inv.OrganizationID, userID)
	if err != nil {
		return inv, false, notFound(err, "invitation not found")
	}
	if m.Role != api.RoleOwner {
		return inv, false, errorf(ErrForbidden, "only the invitee or an owner may see an invitation")
	}
	return inv, false, nil
}

func (s *Server) handleGetInvitation(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "invitation id")
	if err != nil {
		return err
	}
	ctx := r.Context()
	var out api.Invitation
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		inv, _, err := loadInvitation(ctx, tx, id, p.UserID)
		if err != nil {
			return err
		}
		out, err = s.apiInvitation(ctx, tx, inv)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// requirePending fails with 410 gone unless the invitation can still be acted on.
func (s *Server) requirePending(inv store.Invitation) error {
	if st := s.invitationStatus(inv); st != api.InvitationPending {
		return errorf(ErrGone, "invitation is %s", st)
	}
	return nil
}

func (s *Server) handleAcceptInvitation(w http.ResponseWriter, r *http.Request, p Principal) error {
	return s.answerInvitation(w, r, p, true)
}

func (s *Server) handleDeclineInvitation(w http.ResponseWriter, r *http.Request, p Principal) error {
	return s.answerInvitation(w, r, p, false)
}

// answerInvitation accepts or declines an invitation as its invitee. The body is ignored.
func (s *Server) answerInvitation(w http.ResponseWriter, r *http.Request, p Principal, accept bool) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "invitation id")
	if err != nil {
		return err
	}
	ctx := r.Context()
	var out api.Invitation
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		inv, invitee, err := loadInvitation(ctx, tx, id, p.UserID)
		if err != nil {
			return err
		}
		if !invitee {
			return errorf(ErrForbidden, "only the invitee may answer an invitation")
		}
		if err := s.requirePending(inv); err != nil {
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
		if err := tx.SetInvitationStatus(ctx, id, status); err != nil {
			return err
		}
		inv.Status = status
		out, err = s.apiInvitation(ctx, tx, inv)
		return err
	})
	if err != nil {
		return err
	}
	s.log.Info("invitation answered", "invitation_id", id, "user_id", p.UserID, "status", out.Status)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleRevokeInvitation lets an owner of the organization revoke a pending invitation.
func (s *Server) handleRevokeInvitation(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "invitation id")
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = s.store.Tx(ctx, func(tx store.Tx) error {
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
		return err
	}
	s.log.Info("invitation revoked", "invitation_id", id, "by", p.UserID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
