// Package api holds the wire types of the Nexodus coordinator's HTTP API: the JSON request and
// response bodies, event-stream records and error codes. Both the coordinator and the client
// import it, so the two sides cannot drift apart.
//
// Every route lives under [Prefix]:
//
//	POST   /users                          admin: create a user (and its personal organization)
//	GET    /users                          admin: list users
//	GET    /users/me                       user: who am I
//	POST   /users/{id}/tokens              admin: issue a user API token
//	POST   /users/me/tokens                user: create an API token of its own (see identity.go)
//	GET    /users/me/tokens                user: its own tokens, without secrets
//	DELETE /users/me/tokens/{id}           user: revoke one of its tokens (at once)
//	DELETE /users/{id}                     admin, or the user themself
//	POST   /organizations                  user: create (caller becomes owner)
//	GET    /organizations                  user: the caller's organizations
//	GET    /organizations/{id}             member
//	DELETE /organizations/{id}             owner (not a personal organization)
//	GET    /organizations/{id}/members     member
//	DELETE /organizations/{id}/members/{user_id}  owner, or the member themself
//	PATCH  /organizations/{id}/members/{user_id}  owner: change a member's role
//	GET    /organizations/{id}/devices     member, or a device of the organization: the peer list
//	GET    /organizations/{id}/events      member: event stream (SSE)
//	PUT    /organizations/{id}/relays      owner: set the organization's own relays (and their secret)
//	GET    /organizations/{id}/relays      member: the organization's own relays, without the secret
//	DELETE /organizations/{id}/relays      owner: back to the coordinator's default relays
//	POST   /invitations                    owner of the organization
//	GET    /invitations                    user: sent to the caller, or by organizations it owns
//	GET    /invitations/{id}               invitee or owner
//	POST   /invitations/{id}/accept        invitee
//	POST   /invitations/{id}/decline       invitee
//	DELETE /invitations/{id}               owner: revoke
//	POST   /reg-keys                       owner of the organization
//	GET    /reg-keys                       user: keys of organizations it owns
//	GET    /reg-keys/{id}                  owner
//	DELETE /reg-keys/{id}                  owner
//	POST   /devices                        registration key, or user with organization_id
//	GET    /devices                        user: devices of its organizations
//	GET    /devices/{id}                   member, or the device itself
//	PATCH  /devices/{id}                   the device's owner, or the device itself (no move)
//	DELETE /devices/{id}                   the device's owner, the organization's owner, or the device itself
//	GET    /devices/{id}/events            the device itself: its event stream (SSE)
//	POST   /devices/{id}/signal            a device of the same organization
//	GET    /devices/{id}/relay             the device itself: STUN and TURN servers, fresh credentials
//
// Outside the prefix, GET /healthz and GET /readyz report liveness and readiness. Requests authenticate with an "Authorization: Bearer TOKEN"
// header carrying one of: the admin token, a user API token ([UserTokenPrefix]), a registration
// key ([RegKeyPrefix]) or a device token ([DeviceTokenPrefix]).
package api

import (
	"time"
)

// Prefix is the path prefix of every API route.
const Prefix = "/api/v1"

// Token prefixes tell the coordinator which kind of credential a bearer token is, so that it can
// look it up by ID and compare the secret part in constant time.
const (
	UserTokenPrefix   = "nxu_"
	RegKeyPrefix      = "nxk_"
	DeviceTokenPrefix = "nxd_"
)

// Size limits the coordinator enforces. Clients may check them early for a clearer error.
const (
	MaxRequestBody    = 64 << 10 // bytes in any JSON request body
	MaxSignalPayload  = 16 << 10 // bytes in one signaling payload
	MaxHostnameLength = 63
	MaxNameLength     = 64
	MaxEndpoints      = 16
	MaxChildPrefixes  = 32
	MaxRelayServers   = 8   // TURN URLs, and STUN servers, in one organization's relays
	MaxRelayURLLength = 256 // bytes in one TURN URL or STUN server
	MinRelaySecret    = 16  // bytes in an organization's relay secret
	MaxRelaySecret    = 256
)

// Roles of an organization member.
const (
	RoleOwner  = "owner"
	RoleMember = "member"
)

// Error is the body of every non-2xx response. Reason is set on a 401/403/404 that refuses a
// credential for good (the device was removed, the token revoked or expired), so that a client
// reconnecting after the fact learns the same reason a connected stream's [EventClosed] gives.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Reason  Reason `json:"reason,omitempty"`
}

// Reason says why the coordinator ended an event stream or refused a credential for good. A
// client must not retry with the same credential: nothing it can do will make it work again.
type Reason string

// Reasons carried by [EventClosed] events and [Error.Reason].
const (
	// ReasonDeviceRemoved: the stream's device was deleted (or, on a reconnect, no longer
	// exists for whatever reason).
	ReasonDeviceRemoved Reason = "device_removed"
	// ReasonOrganizationDeleted: the organization was deleted, with its devices.
	ReasonOrganizationDeleted Reason = "organization_deleted"
	// ReasonUserDeleted: the user the credential acts for was deleted, with their devices.
	ReasonUserDeleted Reason = "user_deleted"
	// ReasonMembershipEnded: the user of an organization stream is no longer a member.
	ReasonMembershipEnded Reason = "membership_ended"
	// ReasonCredentialRevoked: the token was revoked, or replaced by a newer one.
	ReasonCredentialRevoked Reason = "credential_revoked"
	// ReasonCredentialExpired: the token reached its expiry.
	ReasonCredentialExpired Reason = "credential_expired"
)

// Error codes carried in [Error.Code].
const (
	CodeBadRequest    = "bad_request"    // 400: malformed or invalid input
	CodeUnauthorized  = "unauthorized"   // 401: missing or unknown credential
	CodeForbidden     = "forbidden"      // 403: credential known, action not allowed
	CodeNotFound      = "not_found"      // 404: no such resource visible to the caller
	CodeConflict      = "conflict"       // 409: duplicate name, second live invitation, ...
	CodeGone          = "gone"           // 410: expired, revoked, used or declined
	CodeTooLarge      = "too_large"      // 413: request body over the limit
	CodeRateLimited   = "rate_limited"   // 429: over a rate limit; Retry-After says when to retry
	CodePoolExhausted = "pool_exhausted" // 409: no free address or prefix left
	CodeInternal      = "internal"       // 500
	CodeUnavailable   = "unavailable"    // 503: not ready
	// CodeCanceled (status 499) is recorded for a request whose client went away before the
	// answer; no client receives it.
	CodeCanceled = "canceled"
)

// User is an account. Every user owns a personal organization with the same name.
type User struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateUserRequest is the body of POST /users (admin only).
type CreateUserRequest struct {
	Username string `json:"username"`
}

// CreateUserResponse answers POST /users: the user and the ID of its personal organization.
type CreateUserResponse struct {
	User                   User   `json:"user"`
	PersonalOrganizationID string `json:"personal_organization_id"`
}

// CreateTokenRequest is the body of POST /users/{id}/tokens (admin only).
type CreateTokenRequest struct {
	Description string `json:"description,omitempty"`
	// ExpiresInSeconds, when positive, limits the token's life.
	ExpiresInSeconds int64 `json:"expires_in_seconds,omitempty"`
}

// Token describes a user API token. Secret is set only in the response that created it.
type Token struct {
	ID          string     `json:"id"`
	UserID      string     `json:"user_id"`
	Description string     `json:"description,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	Secret      string     `json:"secret,omitempty"`
}

// Organization is a group of users and their devices sharing one address space.
type Organization struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	OwnerID     string    `json:"owner_id"`
	IPv4CIDR    string    `json:"ipv4_cidr"`
	IPv6CIDR    string    `json:"ipv6_cidr"`
	CreatedAt   time.Time `json:"created_at"`
}

// CreateOrganizationRequest is the body of POST /organizations. An empty IPv4CIDR takes the next
// free /16 of the coordinator's pool (100.64.0.0/10 by default).
type CreateOrganizationRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	IPv4CIDR    string `json:"ipv4_cidr,omitempty"`
}

// Member is a user's membership of an organization.
type Member struct {
	UserID   string    `json:"user_id"`
	Username string    `json:"username"`
	Role     string    `json:"role"`
	JoinedAt time.Time `json:"joined_at"`
}

// Invitation statuses. An invitation past its ExpiresAt while pending reads as expired.
const (
	InvitationPending  = "pending"
	InvitationAccepted = "accepted"
	InvitationDeclined = "declined"
	InvitationRevoked  = "revoked"
	InvitationExpired  = "expired"
)

// Invitation asks a user to join an organization with a role until ExpiresAt.
type Invitation struct {
	ID               string    `json:"id"`
	OrganizationID   string    `json:"organization_id"`
	OrganizationName string    `json:"organization_name"`
	UserID           string    `json:"user_id"`
	Username         string    `json:"username"`
	Role             string    `json:"role"`
	InviterID        string    `json:"inviter_id"`
	Status           string    `json:"status"`
	ExpiresAt        time.Time `json:"expires_at"`
	CreatedAt        time.Time `json:"created_at"`
}

// CreateInvitationRequest is the body of POST /invitations. Role defaults to member and
// ExpiresInSeconds to 7 days.
type CreateInvitationRequest struct {
	OrganizationID   string `json:"organization_id"`
	Username         string `json:"username"`
	Role             string `json:"role,omitempty"`
	ExpiresInSeconds int64  `json:"expires_in_seconds,omitempty"`
}

// RegKey is a registration key: it lets a device join one organization. Secret is set only in
// the response that created it; the coordinator keeps only its hash.
type RegKey struct {
	ID             string     `json:"id"`
	OrganizationID string     `json:"organization_id"`
	OwnerID        string     `json:"owner_id"`
	Description    string     `json:"description,omitempty"`
	SingleUse      bool       `json:"single_use"`
	Ephemeral      bool       `json:"ephemeral"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	Used           bool       `json:"used"`
	CreatedAt      time.Time  `json:"created_at"`
	Secret         string     `json:"secret,omitempty"`
}

// CreateRegKeyRequest is the body of POST /reg-keys.
type CreateRegKeyRequest struct {
	OrganizationID   string `json:"organization_id"`
	Description      string `json:"description,omitempty"`
	SingleUse        bool   `json:"single_use,omitempty"`
	Ephemeral        bool   `json:"ephemeral,omitempty"`
	ExpiresInSeconds int64  `json:"expires_in_seconds,omitempty"`
}

// Endpoint sources.
const (
	EndpointLocal     = "local"     // an address of the device's own interfaces
	EndpointReflexive = "reflexive" // the device's address as a STUN server saw it
)

// Endpoint is a UDP address at which a device may be reachable.
type Endpoint struct {
	Source  string `json:"source"`
	Address string `json:"address"` // "ip:port" or "[ipv6]:port"
}

// Device is a node of an organization's mesh.
type Device struct {
	ID             string     `json:"id"`
	OrganizationID string     `json:"organization_id"`
	OwnerID        string     `json:"owner_id"`
	PublicKey      string     `json:"public_key"` // WireGuard key, standard base64
	Hostname       string     `json:"hostname"`
	TunnelIPv4     string     `json:"tunnel_ipv4"`
	TunnelIPv6     string     `json:"tunnel_ipv6"`
	Endpoints      []Endpoint `json:"endpoints"`
	SymmetricNAT   bool       `json:"symmetric_nat"`
	ChildPrefixes  []string   `json:"child_prefixes"`
	Ephemeral      bool       `json:"ephemeral"`
	Online         bool       `json:"online"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// RegisterDeviceRequest is the body of POST /devices. With a registration key the organization
// is the key's (OrganizationID may be empty or must match); with a user token OrganizationID
// names an organization the user belongs to.
type RegisterDeviceRequest struct {
	OrganizationID string     `json:"organization_id,omitempty"`
	PublicKey      string     `json:"public_key"`
	Hostname       string     `json:"hostname"`
	Endpoints      []Endpoint `json:"endpoints,omitempty"`
	SymmetricNAT   bool       `json:"symmetric_nat,omitempty"`
	ChildPrefixes  []string   `json:"child_prefixes,omitempty"`
	// Ephemeral asks the coordinator to remove the device once its event stream has been gone
	// for the grace period (a node without saved state will never come back as the same
	// device). A key created with ephemeral set makes every device it registers ephemeral.
	Ephemeral bool `json:"ephemeral,omitempty"`
}

// RegisterDeviceResponse answers POST /devices. SealedToken is the device token sealed to the
// device's WireGuard public key (see package sealbox): only the private-key holder can open it.
//
// Registering a public key again returns the same device and addresses (200) and a fresh
// token. When the device's owner does it with their user token, the request's hostname,
// endpoints, NAT flag and child prefixes are applied and the old token stops working at once.
// When anybody else does it (a registration key, another member), Pending is set: nothing of
// the request was applied, Device is the device as it was, the old token keeps working, and
// the new token replaces it the first time it is used — only the private-key holder can open
// it, so a registration key alone cannot take a device over. The node then updates its
// hostname and endpoints with PATCH /devices/{id} using the new token.
type RegisterDeviceResponse struct {
	Device      Device `json:"device"`
	SealedToken []byte `json:"sealed_token"`
	Pending     bool   `json:"pending,omitempty"`
}

// UpdateDeviceRequest is the body of PATCH /devices/{id}; nil fields are left unchanged.
// OrganizationID moves the device (user tokens only: the device's owner must be a member of the
// target organization); the device gets new addresses there.
type UpdateDeviceRequest struct {
	Hostname       *string     `json:"hostname,omitempty"`
	Endpoints      *[]Endpoint `json:"endpoints,omitempty"`
	SymmetricNAT   *bool       `json:"symmetric_nat,omitempty"`
	ChildPrefixes  *[]string   `json:"child_prefixes,omitempty"`
	OrganizationID *string     `json:"organization_id,omitempty"`
}

// SignalRequest is the body of POST /devices/{id}/signal: an opaque payload from the caller's
// device to device {id} in the same organization, delivered on that device's event stream.
type SignalRequest struct {
	Payload []byte `json:"payload"`
}

// Signal is a delivered signaling message.
type Signal struct {
	From    string `json:"from"` // sending device ID
	To      string `json:"to"`   // receiving device ID
	Payload []byte `json:"payload"`
}

// Event types on an event stream.
const (
	// EventSync carries the full current peer list; it starts every stream that is not resumed
	// and replaces a resume that reaches back further than the coordinator's event log.
	EventSync          = "sync"
	EventDeviceAdded   = "device.added"
	EventDeviceUpdated = "device.updated"
	// EventDeviceRemoved is sent when a device is deleted or moved out of the organization.
	EventDeviceRemoved = "device.removed"
	EventSignal        = "signal"
	// EventRelay carries fresh relay servers and credentials ([Event.Relay]) to the stream's
	// device: soon after the stream connects, again when half the credentials' lifetime has
	// passed, and at once when the organization's relays change. It is not part of the log: it
	// has no revision (0, and no SSE id field, so Last-Event-ID keeps the last logged
	// revision) and is never replayed; a reconnecting stream gets a fresh one instead.
	EventRelay = "relay"
	// EventClosed is the last event of a stream that the coordinator ends for good;
	// [Event.Reason] says why. It is not logged (Revision 0, no SSE id). A client must not
	// reconnect with the same credential.
	EventClosed = "closed"
)

// Event is one record of an event stream. Streams are Server-Sent Events: the SSE "id" field is
// Revision, the "event" field is Type and "data" is this struct as JSON. A client resumes by
// sending the last revision it saw in the Last-Event-ID header. Revisions increase strictly
// within one stream. Signal events are addressed to one device and appear only on that device's
// stream; like the others they are replayed on resume while the log keeps them. Relay events
// appear only on the device's own stream too, but are not logged: they carry Revision 0, have
// no SSE id, and a client must not let them move its resume point.
type Event struct {
	Revision       int64        `json:"revision"`
	Type           string       `json:"type"`
	OrganizationID string       `json:"organization_id"`
	Device         *Device      `json:"device,omitempty"`  // added, updated, removed
	Devices        []Device     `json:"devices,omitempty"` // sync
	Signal         *Signal      `json:"signal,omitempty"`
	Relay          *RelayConfig `json:"relay,omitempty"`
	Reason         Reason       `json:"reason,omitempty"` // closed
	Time           time.Time    `json:"time"`
}

// RelayConfig tells a device which STUN and TURN servers to use and with which credentials
// (the TURN REST scheme: Username is "expiry-unix-seconds:device-id", Password the base64
// HMAC-SHA1 of Username under the secret shared with the relays). The servers and secret are
// the device's organization's own relays when it has set them ([OrgRelays]), else the
// coordinator's defaults. It answers GET /devices/{id}/relay and is pushed on the device's event
// stream as [EventRelay] before ExpiresAt; a device whose stream is down fetches it again before
// ExpiresAt.
type RelayConfig struct {
	STUN      []string  `json:"stun,omitempty"` // "host:port"
	TURN      []string  `json:"turn,omitempty"` // "turn:host:port?transport=udp"
	Username  string    `json:"username,omitempty"`
	Password  string    `json:"password,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitempty"`
}

// OrgRelays are an organization's own relays (GET and PUT /organizations/{id}/relays): its
// devices get these servers, with credentials minted from the organization's secret, instead
// of the coordinator's defaults. The secret is never returned.
type OrgRelays struct {
	OrganizationID string    `json:"organization_id"`
	STUN           []string  `json:"stun"` // "host:port"
	TURN           []string  `json:"turn"` // "turn:host:port?transport=udp"
	UpdatedAt      time.Time `json:"updated_at"`
}

// SetOrgRelaysRequest is the body of PUT /organizations/{id}/relays, which replaces the
// organization's relays. TURN holds 1 to [MaxRelayServers] URLs of the form
// "turn:HOST:PORT?transport=udp|tcp" or "turns:HOST:PORT?transport=udp|tcp" (an IPv6 host in
// brackets); STUN up to [MaxRelayServers] "HOST:PORT" servers. Secret is the secret those
// relays share for the TURN REST scheme (coturn's static-auth-secret), [MinRelaySecret] to
// [MaxRelaySecret] printable ASCII characters without spaces; it is write-only.
type SetOrgRelaysRequest struct {
	STUN   []string `json:"stun,omitempty"`
	TURN   []string `json:"turn"`
	Secret string   `json:"secret"`
}

// Health is the body of /healthz and /readyz.
type Health struct {
	Status string `json:"status"`
}

// IsID reports whether s has the form of the coordinator's IDs: a canonical lowercase UUID.
func IsID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
