package coordinator

// Members' roles: an owner makes a member an owner, or an owner a member again. The
// organization's creator stays an owner.

import (
	"context"
	"net/http"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// setMemberRole changes the role of member uid of organization id (owners only).
func (s *Server) setMemberRole(ctx context.Context, p Principal, id, uid string, req api.SetMemberRoleRequest) (api.Member, error) {
	if req.Role != api.RoleOwner && req.Role != api.RoleMember {
		return api.Member{}, errorf(ErrBadRequest, "role must be %q or %q", api.RoleOwner, api.RoleMember)
	}
	m, err := inTx(ctx, s.store, func(tx store.Tx) (store.Membership, error) {
		o, _, err := ownerOf(ctx, tx, id, p.UserID)
		if err != nil {
			return store.Membership{}, err
		}
		if _, err := tx.GetMember(ctx, id, uid); err != nil {
			return store.Membership{}, notFound(err, "member not found")
		}
		if uid == o.OwnerID && req.Role != api.RoleOwner {
			return store.Membership{}, errorf(ErrForbidden, "the organization's creator stays an owner")
		}
		if err := tx.SetMemberRole(ctx, id, uid, req.Role); err != nil {
			return store.Membership{}, notFound(err, "member not found")
		}
		m, err := tx.GetMember(ctx, id, uid)
		return m, notFound(err, "member not found")
	})
	if err != nil {
		return api.Member{}, err
	}
	s.log.Info("member role changed", "org_id", id, "user_id", uid, "role", req.Role, "by", p.UserID)
	return apiMember(m), nil
}

// handleSetMemberRole serves PATCH /organizations/{id}/members/{user_id}.
func (s *Server) handleSetMemberRole(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, uid, err := memberPath(r)
	if err != nil {
		return err
	}
	var req api.SetMemberRoleRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	m, err := s.setMemberRole(r.Context(), p, id, uid, req)
	return reply(w, http.StatusOK, m, err)
}
