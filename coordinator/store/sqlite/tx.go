package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// tx implements store.Tx on one SQLite transaction.
type tx struct {
	tx       *sql.Tx
	appended bool // an event was appended: subscribers are woken after commit
}

var _ store.Tx = (*tx)(nil)

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface{ Scan(dest ...any) error }

// exec runs a statement that must change exactly one row when mustAffect is set; zero rows
// affected then means the target does not exist.
func (t *tx) exec(ctx context.Context, what string, mustAffect bool, query string, args ...any) error {
	res, err := t.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, mapErr(err))
	}
	if mustAffect {
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if n == 0 {
			return fmt.Errorf("%s: %w", what, store.ErrNotFound)
		}
	}
	return nil
}

// list runs a query and scans every row with scan.
func list[T any](ctx context.Context, t *tx, what string, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	return out, nil
}

// get runs a single-row query; no row is store.ErrNotFound.
func get[T any](ctx context.Context, t *tx, what string, scan func(scanner) (T, error), query string, args ...any) (T, error) {
	v, err := scan(t.tx.QueryRowContext(ctx, query, args...))
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	return v, nil
}

// nullIfEmpty stores "" as NULL in columns where uniqueness must ignore unset values.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ---- users ----

const userCols = `id, username, created_at`

func scanUser(sc scanner) (store.User, error) {
	var u store.User
	var created string
	if err := sc.Scan(&u.ID, &u.Username, &created); err != nil {
		return u, err
	}
	var err error
	u.CreatedAt, err = parseTime(created)
	return u, err
}

func (t *tx) CreateUser(ctx context.Context, u store.User) error {
	return t.exec(ctx, "create user "+u.ID, false,
		`INSERT INTO users (`+userCols+`) VALUES (?, ?, ?)`, u.ID, u.Username, fmtTime(u.CreatedAt))
}

func (t *tx) GetUser(ctx context.Context, id string) (store.User, error) {
	return get(ctx, t, "get user "+id, scanUser, `SELECT `+userCols+` FROM users WHERE id = ?`, id)
}

func (t *tx) GetUserByUsername(ctx context.Context, username string) (store.User, error) {
	return get(ctx, t, "get user by username "+username, scanUser,
		`SELECT `+userCols+` FROM users WHERE username = ?`, username)
}

func (t *tx) ListUsers(ctx context.Context) ([]store.User, error) {
	return list(ctx, t, "list users", scanUser, `SELECT `+userCols+` FROM users ORDER BY created_at, id`)
}

// ---- tokens ----

const tokenCols = `id, user_id, description, secret_hash, expires_at, created_at`

func scanToken(sc scanner) (store.Token, error) {
	var k store.Token
	var expires sql.NullString
	var created string
	if err := sc.Scan(&k.ID, &k.UserID, &k.Description, &k.SecretHash, &expires, &created); err != nil {
		return k, err
	}
	var err error
	if k.ExpiresAt, err = parseTimePtr(expires); err != nil {
		return k, err
	}
	k.CreatedAt, err = parseTime(created)
	return k, err
}

func (t *tx) CreateToken(ctx context.Context, k store.Token) error {
	return t.exec(ctx, "create token "+k.ID, false,
		`INSERT INTO tokens (`+tokenCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
		k.ID, k.UserID, k.Description, k.SecretHash, fmtTimePtr(k.ExpiresAt), fmtTime(k.CreatedAt))
}

func (t *tx) GetToken(ctx context.Context, id string) (store.Token, error) {
	return get(ctx, t, "get token "+id, scanToken, `SELECT `+tokenCols+` FROM tokens WHERE id = ?`, id)
}

// ---- organizations ----

const orgCols = `o.id, o.name, o.description, o.owner_id, o.personal, o.ipv4_cidr, o.ipv6_cidr, o.created_at`

func scanOrg(sc scanner) (store.Organization, error) {
	var o store.Organization
	var created string
	if err := sc.Scan(&o.ID, &o.Name, &o.Description, &o.OwnerID, &o.Personal, &o.IPv4CIDR, &o.IPv6CIDR, &created); err != nil {
		return o, err
	}
	var err error
	o.CreatedAt, err = parseTime(created)
	return o, err
}

func (t *tx) CreateOrganization(ctx context.Context, o store.Organization) error {
	return t.exec(ctx, "create organization "+o.ID, false,
		`INSERT INTO organizations (id, name, description, owner_id, personal, ipv4_cidr, ipv6_cidr, created_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		o.ID, o.Name, o.Description, o.OwnerID, o.Personal, o.IPv4CIDR, o.IPv6CIDR, fmtTime(o.CreatedAt))
}

func (t *tx) GetOrganization(ctx context.Context, id string) (store.Organization, error) {
	return get(ctx, t, "get organization "+id, scanOrg, `SELECT `+orgCols+` FROM organizations o WHERE o.id = ?`, id)
}

func (t *tx) ListOrganizations(ctx context.Context) ([]store.Organization, error) {
	return list(ctx, t, "list organizations", scanOrg,
		`SELECT `+orgCols+` FROM organizations o ORDER BY o.created_at, o.id`)
}

func (t *tx) ListOrganizationsForUser(ctx context.Context, userID string) ([]store.Organization, error) {
	return list(ctx, t, "list organizations for user "+userID, scanOrg,
		`SELECT `+orgCols+` FROM organizations o JOIN memberships m ON m.organization_id = o.id
		 WHERE m.user_id = ? ORDER BY o.created_at, o.id`, userID)
}

// DeleteOrganization relies on ON DELETE CASCADE for memberships, invitations, registration
// keys, devices, relays and events.
func (t *tx) DeleteOrganization(ctx context.Context, id string) error {
	return t.exec(ctx, "delete organization "+id, true, `DELETE FROM organizations WHERE id = ?`, id)
}

// ---- memberships ----

const memberCols = `m.organization_id, m.user_id, u.username, m.role, m.joined_at`

func scanMember(sc scanner) (store.Membership, error) {
	var m store.Membership
	var joined string
	if err := sc.Scan(&m.OrganizationID, &m.UserID, &m.Username, &m.Role, &joined); err != nil {
		return m, err
	}
	var err error
	m.JoinedAt, err = parseTime(joined)
	return m, err
}

func (t *tx) AddMember(ctx context.Context, m store.Membership) error {
	return t.exec(ctx, fmt.Sprintf("add member %s to organization %s", m.UserID, m.OrganizationID), false,
		`INSERT INTO memberships (organization_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)`,
		m.OrganizationID, m.UserID, m.Role, fmtTime(m.JoinedAt))
}

func (t *tx) GetMember(ctx context.Context, orgID, userID string) (store.Membership, error) {
	return get(ctx, t, fmt.Sprintf("get member %s of organization %s", userID, orgID), scanMember,
		`SELECT `+memberCols+` FROM memberships m JOIN users u ON u.id = m.user_id
		 WHERE m.organization_id = ? AND m.user_id = ?`, orgID, userID)
}

func (t *tx) ListMembers(ctx context.Context, orgID string) ([]store.Membership, error) {
	return list(ctx, t, "list members of organization "+orgID, scanMember,
		`SELECT `+memberCols+` FROM memberships m JOIN users u ON u.id = m.user_id
		 WHERE m.organization_id = ? ORDER BY m.joined_at, m.user_id`, orgID)
}

func (t *tx) RemoveMember(ctx context.Context, orgID, userID string) error {
	return t.exec(ctx, fmt.Sprintf("remove member %s from organization %s", userID, orgID), true,
		`DELETE FROM memberships WHERE organization_id = ? AND user_id = ?`, orgID, userID)
}

// ---- invitations ----

const invCols = `id, organization_id, user_id, role, inviter_id, status, expires_at, created_at`

func scanInv(sc scanner) (store.Invitation, error) {
	var i store.Invitation
	var expires, created string
	if err := sc.Scan(&i.ID, &i.OrganizationID, &i.UserID, &i.Role, &i.InviterID, &i.Status, &expires, &created); err != nil {
		return i, err
	}
	var err error
	if i.ExpiresAt, err = parseTime(expires); err != nil {
		return i, err
	}
	i.CreatedAt, err = parseTime(created)
	return i, err
}

func (t *tx) CreateInvitation(ctx context.Context, i store.Invitation) error {
	return t.exec(ctx, "create invitation "+i.ID, false,
		`INSERT INTO invitations (`+invCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		i.ID, i.OrganizationID, i.UserID, i.Role, i.InviterID, i.Status, fmtTime(i.ExpiresAt), fmtTime(i.CreatedAt))
}

func (t *tx) GetInvitation(ctx context.Context, id string) (store.Invitation, error) {
	return get(ctx, t, "get invitation "+id, scanInv, `SELECT `+invCols+` FROM invitations WHERE id = ?`, id)
}

func (t *tx) SetInvitationStatus(ctx context.Context, id, status string) error {
	return t.exec(ctx, "set invitation status "+id, true,
		`UPDATE invitations SET status = ? WHERE id = ?`, status, id)
}

func (t *tx) ListInvitationsForUser(ctx context.Context, userID string) ([]store.Invitation, error) {
	return list(ctx, t, "list invitations for user "+userID, scanInv,
		`SELECT `+invCols+` FROM invitations WHERE user_id = ? ORDER BY created_at, id`, userID)
}

func (t *tx) ListInvitationsForOrganization(ctx context.Context, orgID string) ([]store.Invitation, error) {
	return list(ctx, t, "list invitations for organization "+orgID, scanInv,
		`SELECT `+invCols+` FROM invitations WHERE organization_id = ? ORDER BY created_at, id`, orgID)
}

// ---- registration keys ----

const regKeyCols = `id, organization_id, owner_id, description, secret_hash, single_use, ephemeral, expires_at, used, created_at`

func scanRegKey(sc scanner) (store.RegKey, error) {
	var k store.RegKey
	var expires sql.NullString
	var created string
	if err := sc.Scan(&k.ID, &k.OrganizationID, &k.OwnerID, &k.Description, &k.SecretHash,
		&k.SingleUse, &k.Ephemeral, &expires, &k.Used, &created); err != nil {
		return k, err
	}
	var err error
	if k.ExpiresAt, err = parseTimePtr(expires); err != nil {
		return k, err
	}
	k.CreatedAt, err = parseTime(created)
	return k, err
}

func (t *tx) CreateRegKey(ctx context.Context, k store.RegKey) error {
	return t.exec(ctx, "create registration key "+k.ID, false,
		`INSERT INTO reg_keys (`+regKeyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.OrganizationID, k.OwnerID, k.Description, k.SecretHash, k.SingleUse, k.Ephemeral,
		fmtTimePtr(k.ExpiresAt), k.Used, fmtTime(k.CreatedAt))
}

func (t *tx) GetRegKey(ctx context.Context, id string) (store.RegKey, error) {
	return get(ctx, t, "get registration key "+id, scanRegKey,
		`SELECT `+regKeyCols+` FROM reg_keys WHERE id = ?`, id)
}

func (t *tx) ListRegKeys(ctx context.Context, orgID string) ([]store.RegKey, error) {
	return list(ctx, t, "list registration keys of organization "+orgID, scanRegKey,
		`SELECT `+regKeyCols+` FROM reg_keys WHERE organization_id = ? ORDER BY created_at, id`, orgID)
}

func (t *tx) MarkRegKeyUsed(ctx context.Context, id string) error {
	return t.exec(ctx, "mark registration key used "+id, true, `UPDATE reg_keys SET used = 1 WHERE id = ?`, id)
}

func (t *tx) DeleteRegKey(ctx context.Context, id string) error {
	return t.exec(ctx, "delete registration key "+id, true, `DELETE FROM reg_keys WHERE id = ?`, id)
}

// ---- organization relays ----

// encodeList stores a string list as JSON, "[]" for none: one spelling for "none".
func encodeList(l []string) (string, error) {
	if l == nil {
		l = []string{}
	}
	b, err := json.Marshal(l)
	return string(b), err
}

func decodeList(s, what string) ([]string, error) {
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("bad stored %s: %w", what, err)
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

func scanOrgRelays(sc scanner) (store.OrgRelays, error) {
	var r store.OrgRelays
	var stunJSON, turnJSON, updated string
	if err := sc.Scan(&r.OrganizationID, &stunJSON, &turnJSON, &r.Secret, &updated); err != nil {
		return r, err
	}
	var err error
	if r.STUNServers, err = decodeList(stunJSON, "STUN servers"); err != nil {
		return r, err
	}
	if r.TURNServers, err = decodeList(turnJSON, "TURN servers"); err != nil {
		return r, err
	}
	r.UpdatedAt, err = parseTime(updated)
	return r, err
}

func (t *tx) SetOrgRelays(ctx context.Context, r store.OrgRelays) error {
	what := "set relays of organization " + r.OrganizationID
	stunJSON, err := encodeList(r.STUNServers)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	turnJSON, err := encodeList(r.TURNServers)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	secret := r.Secret
	if secret == nil {
		secret = []byte{} // NOT NULL column: an empty secret is still a value
	}
	return t.exec(ctx, what, false,
		`INSERT INTO org_relays (organization_id, stun_servers, turn_servers, secret, updated_at)
		 VALUES (?, ?, ?, ?, ?)
		 ON CONFLICT (organization_id) DO UPDATE SET stun_servers = excluded.stun_servers,
			turn_servers = excluded.turn_servers, secret = excluded.secret, updated_at = excluded.updated_at`,
		r.OrganizationID, stunJSON, turnJSON, secret, fmtTime(r.UpdatedAt))
}

func (t *tx) GetOrgRelays(ctx context.Context, orgID string) (store.OrgRelays, error) {
	return get(ctx, t, "get relays of organization "+orgID, scanOrgRelays,
		`SELECT organization_id, stun_servers, turn_servers, secret, updated_at FROM org_relays WHERE organization_id = ?`, orgID)
}

func (t *tx) DeleteOrgRelays(ctx context.Context, orgID string) error {
	return t.exec(ctx, "delete relays of organization "+orgID, true,
		`DELETE FROM org_relays WHERE organization_id = ?`, orgID)
}

// ---- devices ----

const deviceCols = `id, organization_id, owner_id, reg_key_id, public_key, hostname,
	COALESCE(tunnel_ipv4, ''), COALESCE(tunnel_ipv6, ''), endpoints, symmetric_nat, child_prefixes,
	ephemeral, token_id, token_hash, pending_token_id, pending_token_hash, last_seen_at, created_at, updated_at`

// endpointJSON fixes the stored JSON field names independently of the Go field names.
type endpointJSON struct {
	Source  string `json:"source"`
	Address string `json:"address"`
}

func encodeDeviceLists(d store.Device) (endpoints, prefixes string, err error) {
	eps := make([]endpointJSON, 0, len(d.Endpoints))
	for _, e := range d.Endpoints {
		eps = append(eps, endpointJSON(e))
	}
	b, err := json.Marshal(eps)
	if err != nil {
		return "", "", err
	}
	pfx := d.ChildPrefixes
	if pfx == nil {
		pfx = []string{} // "[]" rather than "null": one spelling for "none"
	}
	p, err := json.Marshal(pfx)
	if err != nil {
		return "", "", err
	}
	return string(b), string(p), nil
}

func scanDevice(sc scanner) (store.Device, error) {
	var d store.Device
	var endpoints, prefixes, lastSeen, created, updated string
	if err := sc.Scan(&d.ID, &d.OrganizationID, &d.OwnerID, &d.RegKeyID, &d.PublicKey, &d.Hostname,
		&d.TunnelIPv4, &d.TunnelIPv6, &endpoints, &d.SymmetricNAT, &prefixes,
		&d.Ephemeral, &d.TokenID, &d.TokenHash, &d.PendingTokenID, &d.PendingTokenHash, &lastSeen, &created, &updated); err != nil {
		return d, err
	}
	var eps []endpointJSON
	if err := json.Unmarshal([]byte(endpoints), &eps); err != nil {
		return d, fmt.Errorf("bad stored endpoints: %w", err)
	}
	for _, e := range eps {
		d.Endpoints = append(d.Endpoints, store.Endpoint(e))
	}
	if err := json.Unmarshal([]byte(prefixes), &d.ChildPrefixes); err != nil {
		return d, fmt.Errorf("bad stored child prefixes: %w", err)
	}
	if len(d.ChildPrefixes) == 0 {
		d.ChildPrefixes = nil
	}
	var err error
	if d.LastSeenAt, err = parseTime(lastSeen); err != nil {
		return d, err
	}
	if d.CreatedAt, err = parseTime(created); err != nil {
		return d, err
	}
	d.UpdatedAt, err = parseTime(updated)
	return d, err
}

func (t *tx) CreateDevice(ctx context.Context, d store.Device) error {
	what := "create device " + d.ID
	eps, pfx, err := encodeDeviceLists(d)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return t.exec(ctx, what, false,
		`INSERT INTO devices (id, organization_id, owner_id, reg_key_id, public_key, hostname,
			tunnel_ipv4, tunnel_ipv6, endpoints, symmetric_nat, child_prefixes,
			ephemeral, token_id, token_hash, pending_token_id, pending_token_hash, last_seen_at, created_at, updated_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.OrganizationID, d.OwnerID, d.RegKeyID, d.PublicKey, d.Hostname,
		nullIfEmpty(d.TunnelIPv4), nullIfEmpty(d.TunnelIPv6), eps, d.SymmetricNAT, pfx,
		d.Ephemeral, d.TokenID, d.TokenHash, d.PendingTokenID, d.PendingTokenHash,
		fmtTime(d.LastSeenAt), fmtTime(d.CreatedAt), fmtTime(d.UpdatedAt))
}

func (t *tx) GetDevice(ctx context.Context, id string) (store.Device, error) {
	return get(ctx, t, "get device "+id, scanDevice, `SELECT `+deviceCols+` FROM devices WHERE id = ?`, id)
}

func (t *tx) GetDeviceByPublicKey(ctx context.Context, publicKey string) (store.Device, error) {
	return get(ctx, t, "get device by public key "+publicKey, scanDevice,
		`SELECT `+deviceCols+` FROM devices WHERE public_key = ?`, publicKey)
}

func (t *tx) ListDevices(ctx context.Context, orgID string) ([]store.Device, error) {
	return list(ctx, t, "list devices of organization "+orgID, scanDevice,
		`SELECT `+deviceCols+` FROM devices WHERE organization_id = ? ORDER BY created_at, id`, orgID)
}

func (t *tx) ListDevicesForOwner(ctx context.Context, ownerID string) ([]store.Device, error) {
	return list(ctx, t, "list devices of owner "+ownerID, scanDevice,
		`SELECT `+deviceCols+` FROM devices WHERE owner_id = ? ORDER BY created_at, id`, ownerID)
}

func (t *tx) UpdateDevice(ctx context.Context, d store.Device) error {
	what := "update device " + d.ID
	eps, pfx, err := encodeDeviceLists(d)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return t.exec(ctx, what, true,
		`UPDATE devices SET organization_id = ?, owner_id = ?, reg_key_id = ?, public_key = ?, hostname = ?,
			tunnel_ipv4 = ?, tunnel_ipv6 = ?, endpoints = ?, symmetric_nat = ?, child_prefixes = ?,
			ephemeral = ?, token_id = ?, token_hash = ?, pending_token_id = ?, pending_token_hash = ?,
			last_seen_at = ?, created_at = ?, updated_at = ?
		 WHERE id = ?`,
		d.OrganizationID, d.OwnerID, d.RegKeyID, d.PublicKey, d.Hostname,
		nullIfEmpty(d.TunnelIPv4), nullIfEmpty(d.TunnelIPv6), eps, d.SymmetricNAT, pfx,
		d.Ephemeral, d.TokenID, d.TokenHash, d.PendingTokenID, d.PendingTokenHash,
		fmtTime(d.LastSeenAt), fmtTime(d.CreatedAt), fmtTime(d.UpdatedAt),
		d.ID)
}

func (t *tx) DeleteDevice(ctx context.Context, id string) error {
	return t.exec(ctx, "delete device "+id, true, `DELETE FROM devices WHERE id = ?`, id)
}

// ---- events ----

const eventCols = `revision, organization_id, target_device_id, type, data, created_at`

func scanEvent(sc scanner) (store.Event, error) {
	var e store.Event
	var created string
	if err := sc.Scan(&e.Revision, &e.OrganizationID, &e.TargetDeviceID, &e.Type, &e.Data, &created); err != nil {
		return e, err
	}
	var err error
	e.CreatedAt, err = parseTime(created)
	return e, err
}

// AppendEvent takes the next number from store_meta rather than MAX(revision)+1, so numbers are
// never reused after pruning; transactions are serialized, so revisions also follow commit order.
func (t *tx) AppendEvent(ctx context.Context, e store.Event) (int64, error) {
	const what = "append event"
	var rev int64
	if err := t.tx.QueryRowContext(ctx,
		`UPDATE store_meta SET value = value + 1 WHERE key = 'last_revision' RETURNING value`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	if err := t.exec(ctx, what, false,
		`INSERT INTO events (`+eventCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
		rev, e.OrganizationID, e.TargetDeviceID, e.Type, e.Data, fmtTime(e.CreatedAt)); err != nil {
		return 0, err
	}
	t.appended = true
	return rev, nil
}

// ListEvents treats limit <= 0 as no limit.
func (t *tx) ListEvents(ctx context.Context, orgID, targetDeviceID string, after int64, limit int) ([]store.Event, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	return list(ctx, t, "list events of organization "+orgID, scanEvent,
		`SELECT `+eventCols+` FROM events
		 WHERE organization_id = ? AND revision > ? AND target_device_id IN ('', ?)
		 ORDER BY revision LIMIT ?`, orgID, after, targetDeviceID, limit)
}

func (t *tx) meta(ctx context.Context, key string) (int64, error) {
	var v int64
	if err := t.tx.QueryRowContext(ctx, `SELECT value FROM store_meta WHERE key = ?`, key).Scan(&v); err != nil {
		return 0, fmt.Errorf("read %s: %w", key, mapErr(err))
	}
	return v, nil
}

func (t *tx) LatestRevision(ctx context.Context) (int64, error) {
	return t.meta(ctx, "last_revision")
}

func (t *tx) PrunedRevision(ctx context.Context) (int64, error) {
	return t.meta(ctx, "pruned_revision")
}

func (t *tx) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	const what = "prune events"
	cutoff := fmtTime(before)
	var n, maxRev int64
	if err := t.tx.QueryRowContext(ctx,
		`SELECT COUNT(*), COALESCE(MAX(revision), 0) FROM events WHERE created_at < ?`, cutoff).Scan(&n, &maxRev); err != nil {
		return 0, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	if n == 0 {
		return 0, nil
	}
	if err := t.exec(ctx, what, false, `DELETE FROM events WHERE created_at < ?`, cutoff); err != nil {
		return 0, err
	}
	if err := t.exec(ctx, what, false,
		`UPDATE store_meta SET value = MAX(value, ?) WHERE key = 'pruned_revision'`, maxRev); err != nil {
		return 0, err
	}
	return n, nil
}
