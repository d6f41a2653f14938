package coordinator

// Authorization: the kind of credential each route takes, and the lookups that load a resource
// from the caller's point of view (404 for what the caller may not see, 403 for what the
// caller sees but may not do).

import (
	"context"
	"slices"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// need is the kind of credential a route takes. Every route checks it before it reads the
// request, so a 403 for the wrong kind of credential reveals nothing about the resource.
type need struct {
	msg   string // what a caller with another kind of credential is told
	kinds []PrincipalKind
}

func needs(msg string, kinds ...PrincipalKind) need { return need{msg: msg, kinds: kinds} }

var (
	adminOnly    = needs("this route needs the admin token", KindAdmin)
	userOnly     = needs("this route needs a user token", KindUser)
	userOrDevice = needs("this route needs a user or device token", KindUser, KindDevice)
)

func (n need) check(p Principal) error {
	if slices.Contains(n.kinds, p.Kind) {
		return nil
	}
	return errorf(ErrForbidden, "%s", n.msg)
}

// memberOf loads an organization for a user who must be a member of it; for anybody else the
// organization does not exist (404).
func memberOf(ctx context.Context, tx store.Tx, orgID, userID string) (store.Organization, store.Membership, error) {
	o, err := tx.GetOrganization(ctx, orgID)
	if err != nil {
		return o, store.Membership{}, notFound(err, "organization not found")
	}
	m, err := tx.GetMember(ctx, orgID, userID)
	if err != nil {
		return o, m, notFound(err, "organization not found")
	}
	return o, m, nil
}

// ownerOf is memberOf for routes that need the owner role: members get 403.
func ownerOf(ctx context.Context, tx store.Tx, orgID, userID string) (store.Organization, store.Membership, error) {
	o, m, err := memberOf(ctx, tx, orgID, userID)
	if err != nil {
		return o, m, err
	}
	if m.Role != api.RoleOwner {
		return o, m, errorf(ErrForbidden, "only an owner of the organization may do this")
	}
	return o, m, nil
}

// ownedOrgs lists the organizations in which the user has the owner role.
func ownedOrgs(ctx context.Context, tx store.Tx, userID string) ([]store.Organization, error) {
	orgs, err := tx.ListOrganizationsForUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(orgs, func(o store.Organization) bool {
		m, err := tx.GetMember(ctx, o.ID, userID)
		return err != nil || m.Role != api.RoleOwner
	}), nil
}

// inOrg loads device id for a caller of organization orgID: a device of another organization
// is, to that caller, not there (404 with msg).
func inOrg(ctx context.Context, tx store.Tx, id, orgID, msg string) (store.Device, error) {
	d, err := tx.GetDevice(ctx, id)
	if err == nil && d.OrganizationID != orgID {
		err = store.ErrNotFound
	}
	return d, notFound(err, msg)
}

// deviceAccess says how the caller relates to a device it can see.
type deviceAccess struct {
	self        bool // the device's own token
	deviceOwner bool // the user who owns the device
	orgOwner    bool // an owner of the device's organization
}

// loadDevice loads a device the caller can see: members of its organization and devices of
// its organization. Everybody else gets 404.
func loadDevice(ctx context.Context, tx store.Tx, p Principal, id string) (store.Device, deviceAccess, error) {
	d, err := tx.GetDevice(ctx, id)
	if err != nil {
		return d, deviceAccess{}, notFound(err, "device not found")
	}
	switch p.Kind {
	case KindUser:
		m, err := tx.GetMember(ctx, d.OrganizationID, p.UserID)
		if err != nil {
			return d, deviceAccess{}, notFound(err, "device not found")
		}
		return d, deviceAccess{deviceOwner: d.OwnerID == p.UserID, orgOwner: m.Role == api.RoleOwner}, nil
	case KindDevice:
		if d.ID == p.DeviceID {
			return d, deviceAccess{self: true}, nil
		}
		_, err := inOrg(ctx, tx, p.DeviceID, d.OrganizationID, "device not found")
		return d, deviceAccess{}, err
	}
	return d, deviceAccess{}, userOrDevice.check(p)
}

// loadRegKey loads a key for an owner of its organization; members get 403, others 404.
func loadRegKey(ctx context.Context, tx store.Tx, id, userID string) (store.RegKey, error) {
	k, err := tx.GetRegKey(ctx, id)
	if err != nil {
		return k, notFound(err, "registration key not found")
	}
	if _, _, err := ownerOf(ctx, tx, k.OrganizationID, userID); err != nil {
		return k, notFound(err, "registration key not found")
	}
	return k, nil
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
