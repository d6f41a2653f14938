package engine

// Interactive login for a node without an auth key (Node.OnLoginURL): the coordinator's OAuth
// 2.0 device authorization grant, approved by a person in its web console, yields a user API
// token that registers the device into that person's personal organization once and is then
// revoked — the node keeps only its own device token.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
)

// LoginClientID names nodes to the person approving their login.
const LoginClientID = "nexodus-node"

// NeedsLogin reports whether a start with cfg has no way to register but a login: no auth key
// and no saved device for this coordinator.
func NeedsLogin(cfg Config) (bool, error) {
	if cfg.AuthKey != "" {
		return false, nil
	}
	saved, err := stateStore{dir: cfg.StateDir}.loadDevice()
	if err != nil {
		return false, fmt.Errorf("nexodus: %w", err)
	}
	return saved.DeviceID == "" || saved.Token == "" || saved.ControlURL != cfg.ControlURL, nil
}

// Login runs a device login against cfg's coordinator: it tells onURL where a person approves
// it, waits (bounded by ctx and the login's expiry) for the approval, and returns cfg with the
// issued user token as its auth key and the person's personal organization to register into.
func Login(ctx context.Context, cfg Config, onURL func(string)) (Config, error) {
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: requestTimeout}
		defer hc.CloseIdleConnections()
	}
	c, err := client.New(cfg.ControlURL, client.WithLogger(cfg.Logger), client.WithHTTPClient(hc))
	if err != nil {
		return cfg, fmt.Errorf("nexodus: control client: %w", err)
	}
	dl, err := c.StartDeviceLogin(ctx, LoginClientID)
	if err != nil {
		return cfg, fmt.Errorf("nexodus: start login: %w", err)
	}
	u := dl.VerificationURIComplete
	if u == "" {
		u = dl.VerificationURI
	}
	onURL(u)
	token, err := c.WaitDeviceLogin(ctx, dl)
	if err != nil {
		return cfg, fmt.Errorf("nexodus: login: %w", err)
	}
	uc := c.WithToken(token)
	org, err := personalOrganization(ctx, uc)
	if err != nil {
		return cfg, err
	}
	cfg.AuthKey, cfg.OrganizationID, cfg.revokeAuthKey = token, org, true
	return cfg, nil
}

// personalOrganization finds the organization made with the token's user: named after them
// and theirs (no other organization may take a username as its name).
func personalOrganization(ctx context.Context, c *client.Client) (string, error) {
	me, err := c.Me(ctx)
	if err != nil {
		return "", fmt.Errorf("nexodus: login: who am I: %w", err)
	}
	orgs, err := c.ListOrganizations(ctx)
	if err != nil {
		return "", fmt.Errorf("nexodus: login: list organizations: %w", err)
	}
	for _, o := range orgs {
		if o.OwnerID == me.ID && strings.EqualFold(o.Name, me.Username) {
			return o.ID, nil
		}
	}
	return "", fmt.Errorf("nexodus: login: user %s has no personal organization", me.Username)
}

// revokeLoginToken revokes the user token a login issued, once it has registered the device:
// it is a credential for the whole account, which the node must not keep.
func (e *Engine) revokeLoginToken(ctx context.Context, reg *client.Client) {
	id, _, ok := strings.Cut(strings.TrimPrefix(e.cfg.AuthKey, api.UserTokenPrefix), ".")
	if !ok {
		return
	}
	if err := reg.RevokeMyToken(ctx, id); err != nil && !errors.Is(err, client.ErrNotFound) {
		e.log.Warn("could not revoke the login's user token; revoke it in the console", "token_id", id, "err", err)
	}
}
