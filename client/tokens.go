package client

import (
	"context"
	"net/http"

	"github.com/nexodus-sdk/nexodus/api"
)

// ---- self-service tokens, user deletion, member roles ----

// CreateMyToken issues the caller an API token of their own (user token). req.Description
// names it and is required; req.ExpiresInSeconds, when positive, limits its life. The returned
// Token.Secret is the bearer token; it is shown only here.
func (c *Client) CreateMyToken(ctx context.Context, req api.CreateTokenRequest) (*api.Token, error) {
	return call[api.Token](ctx, c, "create token", http.MethodPost, c.url("users", "me", "tokens"), req)
}

// ListMyTokens lists the caller's API tokens, without their secrets.
func (c *Client) ListMyTokens(ctx context.Context) ([]api.Token, error) {
	return list[api.Token](ctx, c, "list tokens", c.url("users", "me", "tokens"))
}

// RevokeMyToken revokes one of the caller's API tokens; it stops working at once. Another
// user's token fails with [ErrNotFound].
func (c *Client) RevokeMyToken(ctx context.Context, id string) error {
	return c.do(ctx, "revoke token", http.MethodDelete, c.url("users", "me", "tokens", id), nil, nil)
}

// DeleteUser deletes a user (the admin token, or the user's own token) with their devices,
// personal organization and the organizations only they belong to. It fails with
// [ErrConflict], saying which, while the user is the only owner of an organization that has
// other members.
func (c *Client) DeleteUser(ctx context.Context, id string) error {
	return c.do(ctx, "delete user", http.MethodDelete, c.url("users", id), nil, nil)
}

// SetMemberRole makes a member of an organization an owner or a member (owners only; the
// organization's creator stays an owner) and returns the membership.
func (c *Client) SetMemberRole(ctx context.Context, orgID, userID, role string) (*api.Member, error) {
	return call[api.Member](ctx, c, "set member role", http.MethodPatch, c.url("organizations", orgID, "members", userID), api.SetMemberRoleRequest{Role: role})
}
