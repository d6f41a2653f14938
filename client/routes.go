package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/nexodus-sdk/nexodus/api"
)

// ---- users (admin, except Me) ----

// CreateUser creates a user and its personal organization (admin token).
func (c *Client) CreateUser(ctx context.Context, req api.CreateUserRequest) (*api.CreateUserResponse, error) {
	return call[api.CreateUserResponse](ctx, c, "create user", http.MethodPost, c.url("users"), req)
}

// ListUsers lists every user (admin token).
func (c *Client) ListUsers(ctx context.Context) ([]api.User, error) {
	return list[api.User](ctx, c, "list users", c.url("users"))
}

// Me returns the user the token belongs to.
func (c *Client) Me(ctx context.Context) (*api.User, error) {
	return call[api.User](ctx, c, "get current user", http.MethodGet, c.url("users", "me"), nil)
}

// CreateToken issues an API token for a user (admin token). The returned Token.Secret is the
// bearer token; it is shown only here.
func (c *Client) CreateToken(ctx context.Context, userID string, req api.CreateTokenRequest) (*api.Token, error) {
	return call[api.Token](ctx, c, "create token", http.MethodPost, c.url("users", userID, "tokens"), req)
}

// ---- organizations ----

// CreateOrganization creates an organization owned by the caller.
func (c *Client) CreateOrganization(ctx context.Context, req api.CreateOrganizationRequest) (*api.Organization, error) {
	return call[api.Organization](ctx, c, "create organization", http.MethodPost, c.url("organizations"), req)
}

// ListOrganizations lists the organizations the caller belongs to.
func (c *Client) ListOrganizations(ctx context.Context) ([]api.Organization, error) {
	return list[api.Organization](ctx, c, "list organizations", c.url("organizations"))
}

// GetOrganization returns one organization the caller belongs to.
func (c *Client) GetOrganization(ctx context.Context, id string) (*api.Organization, error) {
	return call[api.Organization](ctx, c, "get organization", http.MethodGet, c.url("organizations", id), nil)
}

// DeleteOrganization deletes an organization (owner; not a personal organization).
func (c *Client) DeleteOrganization(ctx context.Context, id string) error {
	return c.do(ctx, "delete organization", http.MethodDelete, c.url("organizations", id), nil, nil)
}

// ListMembers lists the members of an organization.
func (c *Client) ListMembers(ctx context.Context, orgID string) ([]api.Member, error) {
	return list[api.Member](ctx, c, "list members", c.url("organizations", orgID, "members"))
}

// RemoveMember removes a user from an organization (the owner, or the member leaving).
func (c *Client) RemoveMember(ctx context.Context, orgID, userID string) error {
	return c.do(ctx, "remove member", http.MethodDelete, c.url("organizations", orgID, "members", userID), nil, nil)
}

// SetOrgRelays sets (replacing) the organization's own relays and the secret they share
// (owner). Its devices get them, with credentials minted from that secret, at once on their
// event streams. The answer never carries the secret.
func (c *Client) SetOrgRelays(ctx context.Context, orgID string, req api.SetOrgRelaysRequest) (*api.OrgRelays, error) {
	return call[api.OrgRelays](ctx, c, "set organization relays", http.MethodPut, c.url("organizations", orgID, "relays"), req)
}

// GetOrgRelays returns the organization's own relays, without the secret (member). It fails
// with ErrNotFound when the organization has none (its devices use the coordinator's).
func (c *Client) GetOrgRelays(ctx context.Context, orgID string) (*api.OrgRelays, error) {
	return call[api.OrgRelays](ctx, c, "get organization relays", http.MethodGet, c.url("organizations", orgID, "relays"), nil)
}

// ClearOrgRelays removes the organization's own relays (owner): its devices go back to the
// coordinator's. It fails with ErrNotFound when there were none.
func (c *Client) ClearOrgRelays(ctx context.Context, orgID string) error {
	return c.do(ctx, "clear organization relays", http.MethodDelete, c.url("organizations", orgID, "relays"), nil, nil)
}

// ListDevicesInOrganization returns an organization's devices: the peer list. Members and the
// organization's devices may read it.
func (c *Client) ListDevicesInOrganization(ctx context.Context, orgID string) ([]api.Device, error) {
	return list[api.Device](ctx, c, "list organization devices", c.url("organizations", orgID, "devices"))
}

// ---- invitations ----

// CreateInvitation invites a user to an organization (owner).
func (c *Client) CreateInvitation(ctx context.Context, req api.CreateInvitationRequest) (*api.Invitation, error) {
	return call[api.Invitation](ctx, c, "create invitation", http.MethodPost, c.url("invitations"), req)
}

// ListInvitations lists the invitations sent to the caller and those of organizations it owns.
func (c *Client) ListInvitations(ctx context.Context) ([]api.Invitation, error) {
	return list[api.Invitation](ctx, c, "list invitations", c.url("invitations"))
}

// GetInvitation returns one invitation (invitee or owner).
func (c *Client) GetInvitation(ctx context.Context, id string) (*api.Invitation, error) {
	return call[api.Invitation](ctx, c, "get invitation", http.MethodGet, c.url("invitations", id), nil)
}

// AcceptInvitation accepts an invitation sent to the caller, joining its organization, and
// returns the invitation in its new state.
// Accepting an expired, revoked, declined or used invitation fails with [ErrGone].
func (c *Client) AcceptInvitation(ctx context.Context, id string) (*api.Invitation, error) {
	return call[api.Invitation](ctx, c, "accept invitation", http.MethodPost, c.url("invitations", id, "accept"), nil)
}

// DeclineInvitation declines an invitation sent to the caller and returns it in its new state.
func (c *Client) DeclineInvitation(ctx context.Context, id string) (*api.Invitation, error) {
	return call[api.Invitation](ctx, c, "decline invitation", http.MethodPost, c.url("invitations", id, "decline"), nil)
}

// RevokeInvitation revokes an invitation of an organization the caller owns.
func (c *Client) RevokeInvitation(ctx context.Context, id string) error {
	return c.do(ctx, "revoke invitation", http.MethodDelete, c.url("invitations", id), nil, nil)
}

// ---- registration keys ----

// CreateRegKey creates a registration key for an organization (owner). The returned
// RegKey.Secret is the bearer token a device registers with; it is shown only here.
func (c *Client) CreateRegKey(ctx context.Context, req api.CreateRegKeyRequest) (*api.RegKey, error) {
	return call[api.RegKey](ctx, c, "create registration key", http.MethodPost, c.url("reg-keys"), req)
}

// ListRegKeys lists the registration keys of the organizations the caller owns.
func (c *Client) ListRegKeys(ctx context.Context) ([]api.RegKey, error) {
	return list[api.RegKey](ctx, c, "list registration keys", c.url("reg-keys"))
}

// GetRegKey returns one registration key (without its secret).
func (c *Client) GetRegKey(ctx context.Context, id string) (*api.RegKey, error) {
	return call[api.RegKey](ctx, c, "get registration key", http.MethodGet, c.url("reg-keys", id), nil)
}

// DeleteRegKey deletes a registration key; devices registered with it stay.
func (c *Client) DeleteRegKey(ctx context.Context, id string) error {
	return c.do(ctx, "delete registration key", http.MethodDelete, c.url("reg-keys", id), nil, nil)
}

// ---- devices ----

// RegisterDevice registers a device, authenticated by a registration key (or by a user token
// with req.OrganizationID set). Open the returned SealedToken with [OpenDeviceToken].
// Registering the same public key again returns the same device with a fresh token; unless
// the caller is the device's owner with a user token, the response is Pending: nothing of req
// was applied and the token replaces the device's current one when first used, so PATCH the
// hostname and endpoints with it (see [api.RegisterDeviceResponse]).
func (c *Client) RegisterDevice(ctx context.Context, req api.RegisterDeviceRequest) (*api.RegisterDeviceResponse, error) {
	return call[api.RegisterDeviceResponse](ctx, c, "register device", http.MethodPost, c.url("devices"), req)
}

// ListDevices lists the devices of every organization the caller belongs to.
func (c *Client) ListDevices(ctx context.Context) ([]api.Device, error) {
	return list[api.Device](ctx, c, "list devices", c.url("devices"))
}

// GetDevice returns one device.
func (c *Client) GetDevice(ctx context.Context, id string) (*api.Device, error) {
	return call[api.Device](ctx, c, "get device", http.MethodGet, c.url("devices", id), nil)
}

// UpdateDevice changes a device's hostname, endpoints, NAT flag or child prefixes, or (with a
// user token) moves it to another organization. Nil fields of req are left unchanged.
func (c *Client) UpdateDevice(ctx context.Context, id string, req api.UpdateDeviceRequest) (*api.Device, error) {
	return call[api.Device](ctx, c, "update device", http.MethodPatch, c.url("devices", id), req)
}

// DeleteDevice deletes a device and releases its addresses.
func (c *Client) DeleteDevice(ctx context.Context, id string) error {
	return c.do(ctx, "delete device", http.MethodDelete, c.url("devices", id), nil, nil)
}

// Signal sends an opaque payload from the caller's device (device token) to device toID of
// the same organization; it arrives on that device's event stream as an [api.EventSignal]
// event. Payloads over [api.MaxSignalPayload] are refused without a request.
func (c *Client) Signal(ctx context.Context, toID string, payload []byte) error {
	if len(payload) > api.MaxSignalPayload {
		return fmt.Errorf("client: signal: %w", tooLarge("signal payload", len(payload), api.MaxSignalPayload))
	}
	return c.do(ctx, "signal", http.MethodPost, c.url("devices", toID, "signal"), api.SignalRequest{Payload: payload}, nil)
}

// RelayConfig returns the STUN servers, TURN URLs and fresh TURN credentials for the device
// deviceID (GET /devices/{id}/relay, the device's own token): its organization's relays, or
// the coordinator's. Without a relay secret the TURN fields are empty. The credentials expire
// at ExpiresAt; the device's event stream brings fresh ones (api.EventRelay) before then, so
// fetch new ones yourself only when no relay event has come (for example once three quarters
// of the lifetime have passed).
func (c *Client) RelayConfig(ctx context.Context, deviceID string) (*api.RelayConfig, error) {
	return call[api.RelayConfig](ctx, c, "get relay config", http.MethodGet, c.url("devices", deviceID, "relay"), nil)
}

// ---- health ----

// Health reports whether the coordinator process is alive (GET /healthz).
func (c *Client) Health(ctx context.Context) error {
	_, err := call[api.Health](ctx, c, "health", http.MethodGet, c.rawURL("/healthz"), nil)
	return err
}

// Ready reports whether the coordinator is ready to serve (GET /readyz); a coordinator that is
// not yields an error matching [ErrUnavailable].
func (c *Client) Ready(ctx context.Context) error {
	_, err := call[api.Health](ctx, c, "ready", http.MethodGet, c.rawURL("/readyz"), nil)
	return err
}
