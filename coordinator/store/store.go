// Package store defines the coordinator's persistence interface and its records. The coordinator's
// domain layer works only through [Store] and [Tx]; the SQLite engine (package store/sqlite) is
// the embedded default and the PostgreSQL engine (package store/postgres) takes its place for
// several replicas. Every engine must pass the conformance suite in package store/storetest.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors every engine returns (wrapped) so the domain layer can branch with errors.Is.
var (
	// ErrNotFound: no row matches.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a uniqueness rule was violated (username, personal organization name,
	// public key, tunnel address within an organization, membership, ...).
	ErrConflict = errors.New("store: conflict")
	// ErrReadOnly: a write was attempted in a transaction opened with [Store.View].
	ErrReadOnly = errors.New("store: read-only transaction")
	// ErrUnavailable: the database cannot be reached or refuses connections (a server that is
	// down, restarting or not accepting connections). It is worth trying again later; the
	// store reconnects by itself.
	ErrUnavailable = errors.New("store: database unavailable")
)

// User is an account.
type User struct {
	ID        string
	Username  string
	CreatedAt time.Time
}

// Token is a user API token; only the hash of its secret is stored.
type Token struct {
	ID          string
	UserID      string
	Description string
	SecretHash  []byte
	ExpiresAt   *time.Time
	CreatedAt   time.Time
}

// Organization is a group of users and devices with its own address space. The names of
// personal organizations are unique (they are usernames); other organizations' names are not
// unique, so that nobody can take a name away from a future user or learn which names other
// organizations use. The domain layer keeps non-personal organizations off usernames.
type Organization struct {
	ID          string
	Name        string
	Description string
	OwnerID     string
	Personal    bool // the organization made with a user; cannot be deleted on its own
	IPv4CIDR    string
	IPv6CIDR    string
	CreatedAt   time.Time
}

// Membership is a user's role in an organization. Username is filled in by reads.
type Membership struct {
	OrganizationID string
	UserID         string
	Username       string
	Role           string
	JoinedAt       time.Time
}

// Invitation asks a user to join an organization. Status is one of the api.Invitation*
// constants except expired, which is derived from ExpiresAt by the domain layer.
type Invitation struct {
	ID             string
	OrganizationID string
	UserID         string
	Role           string
	InviterID      string
	Status         string
	ExpiresAt      time.Time
	CreatedAt      time.Time
}

// RegKey is a registration key; only the hash of its secret is stored.
type RegKey struct {
	ID             string
	OrganizationID string
	OwnerID        string
	Description    string
	SecretHash     []byte
	SingleUse      bool
	Ephemeral      bool
	ExpiresAt      *time.Time
	Used           bool
	CreatedAt      time.Time
}

// Endpoint is a UDP address at which a device may be reachable (see api.Endpoint).
type Endpoint struct {
	Source  string
	Address string
}

// Device is a registered node. PublicKey is unique across the coordinator; TunnelIPv4 and
// TunnelIPv6 are unique within an organization. TokenHash is the hash of the device token's
// secret; TokenID identifies that token (it changes whenever the token does, so streams opened
// with an older token can tell). PendingTokenID and PendingTokenHash are a second token, issued
// sealed to PublicKey when the device was registered again by someone who may not replace its
// token outright: it becomes the device's token the first time it is used. Empty when none.
type Device struct {
	ID               string
	OrganizationID   string
	OwnerID          string
	RegKeyID         string // empty when registered with a user token
	PublicKey        string
	Hostname         string
	TunnelIPv4       string
	TunnelIPv6       string
	Endpoints        []Endpoint
	SymmetricNAT     bool
	ChildPrefixes    []string
	Ephemeral        bool
	TokenID          string
	TokenHash        []byte
	PendingTokenID   string
	PendingTokenHash []byte
	LastSeenAt       time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// DeviceAddresses are one device's tunnel addresses: what address allocation reads of the
// devices of an organization, instead of whole devices. Empty when unset.
type DeviceAddresses struct {
	DeviceID   string
	TunnelIPv4 string
	TunnelIPv6 string
}

// OrgRelays are an organization's own relays: devices of the organization are told these TURN
// URLs and STUN servers, with credentials minted from Secret, instead of the coordinator's
// defaults. Secret is the shared secret in the form the domain layer keeps it (sealed when the
// coordinator has a key for that); the store does not read it. At most one per organization.
type OrgRelays struct {
	OrganizationID string
	STUNServers    []string
	TURNServers    []string
	Secret         []byte
	UpdatedAt      time.Time
}

// Event is one record of an organization's event log. Revision is assigned by AppendEvent and
// increases strictly across the whole store, so one number orders every organization's log.
// TargetDeviceID, when set, limits the event to that device's stream (signals).
// Data is the event's JSON payload as the domain layer encoded it; the store does not read it.
type Event struct {
	Revision       int64
	OrganizationID string
	TargetDeviceID string
	Type           string
	Data           []byte
	CreatedAt      time.Time
}

// Identity links a user to an account at an OpenID provider. (Issuer, Subject) is unique; a
// user may have several identities (one per provider, or more).
type Identity struct {
	Issuer    string
	Subject   string
	UserID    string
	Email     string
	CreatedAt time.Time
}

// Session is a signed-in browser session; only the hash of its secret is stored.
type Session struct {
	ID         string
	UserID     string
	SecretHash []byte
	ExpiresAt  time.Time
	CreatedAt  time.Time
}

// LoginState is a sign-in with an OpenID provider in progress, keyed by the hash of its OAuth
// state parameter: what the callback needs to finish it (nonce, PKCE verifier), on any replica.
// LinkUserID is set when a signed-in user is linking a second provider to their account.
type LoginState struct {
	StateHash  []byte
	Provider   string
	Nonce      string
	Verifier   string
	ReturnTo   string
	LinkUserID string
	ExpiresAt  time.Time
	CreatedAt  time.Time
}

// DeviceAuth is an OAuth 2.0 device authorization grant (RFC 8628) in progress. DeviceCodeHash
// (the hash of the secret device code the client polls with) and UserCode (what the person
// types) are each unique. Status is "pending", "approved", "denied" or "used"; UserID is set
// when approved.
type DeviceAuth struct {
	ID             string
	DeviceCodeHash []byte
	UserCode       string
	ClientName     string
	Status         string
	UserID         string
	ExpiresAt      time.Time
	LastPolledAt   time.Time
	CreatedAt      time.Time
}

// Presence says that a coordinator replica holds an event stream of a device, until ExpiresAt
// unless the replica renews it. A device is online while any unexpired row names it.
type Presence struct {
	DeviceID       string
	OrganizationID string
	ReplicaID      string
	ExpiresAt      time.Time
}

// Change is what a committed transaction that appended events (or signals) tells watchers:
// which organization's log grew, to which revision, and for which device when every event
// appended was targeted at that one device. An empty OrganizationID means "anything may have
// changed" (e.g. after a replica's notification channel was re-established and notifications
// may have been lost): every watcher should re-read.
type Change struct {
	OrganizationID string
	Revision       int64
	TargetDeviceID string
}

// Store is a coordinator database.
type Store interface {
	// View runs fn in a read-only transaction that sees a consistent snapshot. It does not
	// wait for writers where the engine can avoid it (SQLite: a pool of reader connections
	// beside the one writer). Writes inside fn fail with ErrReadOnly.
	View(ctx context.Context, fn func(Tx) error) error
	// Watch calls fn with a Change after every committed transaction that appended events or
	// signals — in this process or, for shared engines, in another replica — in commit order
	// per replica. fn runs on the engine's goroutine and must not block. cancel stops the
	// calls; no call of fn starts after cancel returns.
	Watch(fn func(Change)) (cancel func())
	// TryLock takes the named cluster-wide lock (for work that one replica at a time must do,
	// such as sweeping) without waiting: ok is false when another holder has it. release
	// gives it back; a holder that dies loses it. Single-process engines lock in process.
	TryLock(ctx context.Context, name string) (release func(), ok bool, err error)
	// Compact rewrites the database so that deleted and overwritten rows (such as a relay
	// secret replaced by its sealed form) no longer sit anywhere in its files, where the
	// engine controls its files: SQLite rebuilds the file (VACUUM) and checkpoints the WAL,
	// truncating it to nothing. It may take long on a big database and waits for running
	// transactions. An engine whose files are the server's (PostgreSQL) does nothing: there,
	// scrubbing dead tuples and WAL segments is the database operator's business.
	Compact(ctx context.Context) error

	// Tx runs fn in one transaction that sees a consistent snapshot and commits atomically when
	// fn returns nil; any error rolls it back and is returned. Concurrent transactions that
	// conflict are serialized or retried by the engine, never both committed. An engine that
	// retries (PostgreSQL) runs fn again from the start, so fn must have no effect but on the
	// transaction and on results it sets afresh each run (no appending to outer slices, no
	// sending on channels).
	Tx(ctx context.Context, fn func(Tx) error) error
	// Close releases the database. Calls after Close fail.
	Close() error
}

// Tx is the set of operations available inside a transaction. Get* return ErrNotFound when no
// row matches; Create* return ErrConflict on a uniqueness violation; Update*/Delete* return
// ErrNotFound when the row does not exist. Lists return an empty (non-nil is not required)
// slice when nothing matches, ordered by creation time then ID unless stated.
type Tx interface {
	CreateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, id string) (User, error)
	GetUserByUsername(ctx context.Context, username string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)

	// DeleteUser removes the user with their tokens, identities, sessions, memberships,
	// invitations and device authorizations. The domain layer removes their devices and
	// organizations first; a user still owning an organization or device is ErrConflict.
	DeleteUser(ctx context.Context, id string) error

	CreateToken(ctx context.Context, t Token) error
	GetToken(ctx context.Context, id string) (Token, error)
	ListTokensForUser(ctx context.Context, userID string) ([]Token, error)
	DeleteToken(ctx context.Context, id string) error

	// CreateIdentity is ErrConflict when (Issuer, Subject) is taken, ErrNotFound for a missing
	// user.
	CreateIdentity(ctx context.Context, id Identity) error
	GetIdentity(ctx context.Context, issuer, subject string) (Identity, error)
	ListIdentitiesForUser(ctx context.Context, userID string) ([]Identity, error)

	CreateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, id string) (Session, error)
	DeleteSession(ctx context.Context, id string) error

	CreateLoginState(ctx context.Context, l LoginState) error
	// TakeLoginState returns the login state with that state hash and deletes it, so that a
	// callback can be completed once only.
	TakeLoginState(ctx context.Context, stateHash []byte) (LoginState, error)

	CreateDeviceAuth(ctx context.Context, d DeviceAuth) error
	GetDeviceAuthByCodeHash(ctx context.Context, codeHash []byte) (DeviceAuth, error)
	GetDeviceAuthByUserCode(ctx context.Context, userCode string) (DeviceAuth, error)
	// UpdateDeviceAuth replaces every field but ID, DeviceCodeHash, UserCode and CreatedAt.
	UpdateDeviceAuth(ctx context.Context, d DeviceAuth) error

	// PruneAuth deletes sessions, login states and device authorizations that expired before
	// the given time and returns how many rows it deleted.
	PruneAuth(ctx context.Context, before time.Time) (int64, error)

	CreateOrganization(ctx context.Context, o Organization) error
	GetOrganization(ctx context.Context, id string) (Organization, error)
	// ListOrganizations lists every organization (for IPAM: which CIDRs are taken).
	ListOrganizations(ctx context.Context) ([]Organization, error)
	// ListOrganizationsForUser lists the organizations the user is a member of.
	ListOrganizationsForUser(ctx context.Context, userID string) ([]Organization, error)
	// DeleteOrganization removes the organization with its memberships, invitations,
	// registration keys, devices, relays and events.
	DeleteOrganization(ctx context.Context, id string) error

	AddMember(ctx context.Context, m Membership) error
	GetMember(ctx context.Context, orgID, userID string) (Membership, error)
	ListMembers(ctx context.Context, orgID string) ([]Membership, error)
	RemoveMember(ctx context.Context, orgID, userID string) error
	SetMemberRole(ctx context.Context, orgID, userID, role string) error
	// SetOrganizationOwner makes userID the organization's creator (Organization.OwnerID), as
	// when its creator is deleted and another owner takes it over: ErrNotFound for a missing
	// organization or user.
	SetOrganizationOwner(ctx context.Context, orgID, userID string) error

	CreateInvitation(ctx context.Context, inv Invitation) error
	GetInvitation(ctx context.Context, id string) (Invitation, error)
	SetInvitationStatus(ctx context.Context, id, status string) error
	ListInvitationsForUser(ctx context.Context, userID string) ([]Invitation, error)
	ListInvitationsForOrganization(ctx context.Context, orgID string) ([]Invitation, error)

	CreateRegKey(ctx context.Context, k RegKey) error
	GetRegKey(ctx context.Context, id string) (RegKey, error)
	ListRegKeys(ctx context.Context, orgID string) ([]RegKey, error)
	MarkRegKeyUsed(ctx context.Context, id string) error
	DeleteRegKey(ctx context.Context, id string) error

	CreateDevice(ctx context.Context, d Device) error
	GetDevice(ctx context.Context, id string) (Device, error)
	GetDeviceByPublicKey(ctx context.Context, publicKey string) (Device, error)
	ListDevices(ctx context.Context, orgID string) ([]Device, error)
	// ListDeviceAddresses lists the tunnel addresses of the organization's devices, in no
	// particular order: which addresses are taken, without reading whole devices.
	ListDeviceAddresses(ctx context.Context, orgID string) ([]DeviceAddresses, error)
	// GetDeviceByHostname returns the organization's device with that hostname, ignoring ASCII
	// case (the oldest, should several match), by an index rather than a scan of the devices.
	GetDeviceByHostname(ctx context.Context, orgID, hostname string) (Device, error)
	// ListDevicesForOwner lists the devices a user registered, across organizations.
	ListDevicesForOwner(ctx context.Context, ownerID string) ([]Device, error)
	// UpdateDevice replaces every field of the device with the given ID.
	UpdateDevice(ctx context.Context, d Device) error
	DeleteDevice(ctx context.Context, id string) error

	// SetOrgRelays creates or replaces the relays of r.OrganizationID (ErrNotFound when the
	// organization does not exist).
	SetOrgRelays(ctx context.Context, r OrgRelays) error
	// GetOrgRelays returns the organization's relays, ErrNotFound when it has none.
	GetOrgRelays(ctx context.Context, orgID string) (OrgRelays, error)
	// DeleteOrgRelays removes the organization's relays, ErrNotFound when it has none.
	DeleteOrgRelays(ctx context.Context, orgID string) error
	// ListOrgRelays lists every organization's relays, ordered by organization ID (for
	// re-sealing their secrets when the coordinator's seal key changes or first appears).
	ListOrgRelays(ctx context.Context) ([]OrgRelays, error)

	// AppendEvent stores e, assigning and returning its Revision.
	AppendEvent(ctx context.Context, e Event) (int64, error)
	// ListEvents returns, in revision order, at most limit events of the organization with a
	// revision above after. With targetDeviceID empty only untargeted events are returned;
	// otherwise untargeted events and those targeted at that device.
	ListEvents(ctx context.Context, orgID, targetDeviceID string, after int64, limit int) ([]Event, error)
	// OrganizationRevision is the highest revision of the organization's untargeted events
	// still in the log (0 when none). The domain layer appends one whenever the organization's
	// device list changes, so together with PrunedRevision it names one state of that list.
	OrganizationRevision(ctx context.Context, orgID string) (int64, error)
	// LatestRevision is the highest revision ever assigned (0 when none).
	LatestRevision(ctx context.Context) (int64, error)
	// PrunedRevision is the highest revision PruneEvents or PruneEventsOverSize has ever
	// deleted, in any organization (0 when none): a stream resuming from below it may have
	// lost events and must start from a full sync. It is one number for the whole store, so
	// pruning one organization's log also sends other organizations' streams that resume
	// from below it a sync they did not strictly need: correct, never lossy.
	PrunedRevision(ctx context.Context) (int64, error)
	// PruneEvents deletes events created before the given time, records the highest revision
	// it deleted for PrunedRevision, and returns how many it deleted.
	PruneEvents(ctx context.Context, before time.Time) (int64, error)
	// PruneEventsOverSize bounds every organization's log by size: where the Data of an
	// organization's events adds up to more than maxBytes, it deletes that organization's
	// oldest events (lowest revisions) until what is left adds up to at most maxBytes (so an
	// organization whose newest event alone is larger keeps none). It records the highest
	// revision it deleted for PrunedRevision and returns how many it deleted. Signals are not
	// counted: they live apart, pruned by age.
	PruneEventsOverSize(ctx context.Context, maxBytes int64) (int64, error)

	// AppendSignal stores a transient event (an ICE signal; e.TargetDeviceID is required) in a
	// table apart from the durable log, numbered from the same revision sequence, and returns
	// its revision. ListEvents returns signals targeted at its device among the log's events,
	// in revision order.
	AppendSignal(ctx context.Context, e Event) (int64, error)
	// PruneSignals deletes signals created before the given time and returns how many. Pruned
	// signals do not move PrunedRevision: a signal is useless once old.
	PruneSignals(ctx context.Context, before time.Time) (int64, error)

	// PutPresence creates or renews the presence row of (p.DeviceID, p.ReplicaID).
	PutPresence(ctx context.Context, p Presence) error
	// DeletePresence removes one replica's presence row of a device (not an error when none).
	DeletePresence(ctx context.Context, deviceID, replicaID string) error
	// OnlineDevices lists the IDs of the organization's devices with a presence row that has
	// not expired at now, in no particular order.
	OnlineDevices(ctx context.Context, orgID string, now time.Time) ([]string, error)
	// PrunePresence deletes presence rows that expired before the given time.
	PrunePresence(ctx context.Context, before time.Time) (int64, error)
	// ExpiredEphemeralDevices lists at most limit (no limit when <= 0) ephemeral devices whose
	// LastSeenAt is before seenBefore and that have no presence row unexpired at now — no
	// replica holds their stream — oldest LastSeenAt first, then by ID: the ephemeral devices
	// whose grace period is over, whichever replica last saw them.
	ExpiredEphemeralDevices(ctx context.Context, seenBefore, now time.Time, limit int) ([]Device, error)
}
