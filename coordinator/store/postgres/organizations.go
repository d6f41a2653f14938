package postgres

// The organizations and memberships tables.

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

const orgCols = `o.id, o.name, o.description, o.owner_id, o.personal, o.ipv4_cidr, o.ipv6_cidr, o.created_at`

var scanOrg = scanned(func(r pgx.Row, o *store.Organization) error {
	return r.Scan(&o.ID, &o.Name, &o.Description, &o.OwnerID, &o.Personal, &o.IPv4CIDR, &o.IPv6CIDR, &o.CreatedAt)
})

func (t *tx) CreateOrganization(ctx context.Context, o store.Organization) error {
	return t.exec(ctx, "create organization "+o.ID, false,
		`INSERT INTO organizations (id, name, description, owner_id, personal, ipv4_cidr, ipv6_cidr, created_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		o.ID, o.Name, o.Description, o.OwnerID, o.Personal, o.IPv4CIDR, o.IPv6CIDR, o.CreatedAt)
}

func (t *tx) GetOrganization(ctx context.Context, id string) (store.Organization, error) {
	return get(ctx, t, "get organization "+id, scanOrg, `SELECT `+orgCols+` FROM organizations o WHERE o.id = $1`, id)
}

func (t *tx) ListOrganizations(ctx context.Context) ([]store.Organization, error) {
	return list(ctx, t, "list organizations", scanOrg,
		`SELECT `+orgCols+` FROM organizations o ORDER BY o.created_at, o.id`)
}

func (t *tx) ListOrganizationsForUser(ctx context.Context, userID string) ([]store.Organization, error) {
	return list(ctx, t, "list organizations for user "+userID, scanOrg,
		`SELECT `+orgCols+` FROM organizations o JOIN memberships m ON m.organization_id = o.id
		 WHERE m.user_id = $1 ORDER BY o.created_at, o.id`, userID)
}

// DeleteOrganization relies on ON DELETE CASCADE for memberships, invitations, registration
// keys, devices (and their presence), relays, events and signals.
func (t *tx) DeleteOrganization(ctx context.Context, id string) error {
	return t.exec(ctx, "delete organization "+id, true, `DELETE FROM organizations WHERE id = $1`, id)
}

const memberCols = `m.organization_id, m.user_id, u.username, m.role, m.joined_at`

var scanMember = scanned(func(r pgx.Row, m *store.Membership) error {
	return r.Scan(&m.OrganizationID, &m.UserID, &m.Username, &m.Role, &m.JoinedAt)
})

func (t *tx) AddMember(ctx context.Context, m store.Membership) error {
	return t.exec(ctx, fmt.Sprintf("add member %s to organization %s", m.UserID, m.OrganizationID), false,
		`INSERT INTO memberships (organization_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)`,
		m.OrganizationID, m.UserID, m.Role, m.JoinedAt)
}

func (t *tx) GetMember(ctx context.Context, orgID, userID string) (store.Membership, error) {
	return get(ctx, t, fmt.Sprintf("get member %s of organization %s", userID, orgID), scanMember,
		`SELECT `+memberCols+` FROM memberships m JOIN users u ON u.id = m.user_id
		 WHERE m.organization_id = $1 AND m.user_id = $2`, orgID, userID)
}

func (t *tx) ListMembers(ctx context.Context, orgID string) ([]store.Membership, error) {
	return list(ctx, t, "list members of organization "+orgID, scanMember,
		`SELECT `+memberCols+` FROM memberships m JOIN users u ON u.id = m.user_id
		 WHERE m.organization_id = $1 ORDER BY m.joined_at, m.user_id`, orgID)
}

func (t *tx) RemoveMember(ctx context.Context, orgID, userID string) error {
	return t.exec(ctx, fmt.Sprintf("remove member %s from organization %s", userID, orgID), true,
		`DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2`, orgID, userID)
}

func (t *tx) SetOrganizationOwner(ctx context.Context, orgID, userID string) error {
	return t.exec(ctx, fmt.Sprintf("set owner of organization %s", orgID), true,
		`UPDATE organizations SET owner_id = $1 WHERE id = $2`, userID, orgID)
}

func (t *tx) SetMemberRole(ctx context.Context, orgID, userID, role string) error {
	return t.exec(ctx, fmt.Sprintf("set role of member %s of organization %s", userID, orgID), true,
		`UPDATE memberships SET role = $1 WHERE organization_id = $2 AND user_id = $3`, role, orgID, userID)
}
