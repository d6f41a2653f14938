package coordinator

// Deleting a user: their devices everywhere, their personal organization (with whatever is in
// it), the other organizations they created and nobody else belongs to, their memberships,
// the registration keys they made, their tokens, sessions and identities. An organization
// they created that has other members passes to another of its owners; without one, it must
// first get one.

import (
	"context"
	"slices"
	"strings"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// deleteUser serves DELETE /users/{id}: the admin, or the user themself.
func (s *Server) deleteUser(ctx context.Context, p Principal, id string) (noContent, error) {
	if p.Kind != KindAdmin && p.UserID != id {
		// Another user's account is not theirs to see.
		return noContent{}, errorf(ErrNotFound, "user not found")
	}
	return noContent{}, s.DeleteUser(ctx, id)
}

// DeleteUser deletes a user and everything that is theirs alone (see the file comment). It
// fails with ErrConflict, naming the organizations, when the user is the only owner of an
// organization that has other members: one of them must be made an owner first.
func (s *Server) DeleteUser(ctx context.Context, id string) error {
	var gone []string // device IDs
	err := s.store.Tx(ctx, func(tx store.Tx) error {
		gone = gone[:0]
		u, err := tx.GetUser(ctx, id)
		if err != nil {
			return notFound(err, "user not found")
		}
		orgs, err := tx.ListOrganizationsForUser(ctx, id)
		if err != nil {
			return err
		}
		var drop, leave []store.Organization
		var blocked []string
		for _, o := range orgs {
			switch {
			case o.Personal && o.OwnerID == id:
				drop = append(drop, o)
			case o.OwnerID == id:
				ms, err := tx.ListMembers(ctx, o.ID)
				if err != nil {
					return err
				}
				if len(ms) == 1 {
					drop = append(drop, o)
					continue
				}
				// Another owner takes the organization over; without one, it is blocked.
				i := slices.IndexFunc(ms, func(m store.Membership) bool { return m.UserID != id && m.Role == api.RoleOwner })
				if i < 0 {
					blocked = append(blocked, o.Name)
					continue
				}
				if err := tx.SetOrganizationOwner(ctx, o.ID, ms[i].UserID); err != nil {
					return err
				}
				leave = append(leave, o)
			default:
				leave = append(leave, o)
			}
		}
		if len(blocked) > 0 {
			return errorf(ErrConflict, "%s is the only owner of %s, which other members belong to: "+
				"make one of them an owner (nexctl member role USER owner --org ORG), or remove them, first", u.Username, strings.Join(blocked, ", "))
		}
		devices, err := tx.ListDevicesForOwner(ctx, id)
		if err != nil {
			return err
		}
		for _, d := range devices {
			if err := s.deleteDeviceTx(ctx, tx, d, api.ReasonUserDeleted); err != nil {
				return err
			}
			gone = append(gone, d.ID)
		}
		for _, o := range leave {
			keys, err := tx.ListRegKeys(ctx, o.ID)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if k.OwnerID != id {
					continue
				}
				if err := tx.DeleteRegKey(ctx, k.ID); err != nil {
					return err
				}
			}
			if err := tx.RemoveMember(ctx, o.ID, id); err != nil {
				return err
			}
		}
		for _, o := range drop {
			ds, err := tx.ListDevices(ctx, o.ID)
			if err != nil {
				return err
			}
			for _, d := range ds {
				gone = append(gone, d.ID)
			}
			if err := tx.DeleteOrganization(ctx, o.ID); err != nil {
				return err
			}
		}
		return tx.DeleteUser(ctx, id)
	})
	if err != nil {
		return err
	}
	s.hub.broadcast() // the user's streams and those of their organizations re-check and end
	s.log.Info("user deleted", "user_id", id, "devices_deleted", len(gone))
	return nil
}
