package client

// Device login: the OAuth 2.0 device authorization grant (RFC 8628) of a coordinator that
// serves a web console. golang.org/x/oauth2 does the protocol (polling interval, slow_down,
// expiry); this file points it at the coordinator and names its outcomes.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"

	"github.com/nexodus-sdk/nexodus/api"
)

// Outcomes of [Client.WaitDeviceLogin] other than success.
var (
	// ErrLoginDenied: the person denied the login in the console.
	ErrLoginDenied = errors.New("client: login denied")
	// ErrLoginExpired: nobody approved the code before it expired; start again.
	ErrLoginExpired = errors.New("client: login code expired")
)

// DeviceLogin is a device login waiting for a person's approval. Show them UserCode and
// VerificationURI (or VerificationURIComplete, which carries the code), then call
// [Client.WaitDeviceLogin].
type DeviceLogin struct {
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string
	ExpiresAt               time.Time

	clientID string
	resp     *oauth2.DeviceAuthResponse
}

// oauthConfig is the coordinator's device grant as golang.org/x/oauth2 sees it.
func (c *Client) oauthConfig(clientID string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: clientID,
		Endpoint: oauth2.Endpoint{
			DeviceAuthURL: c.rawURL(api.DeviceAuthorizationPath),
			TokenURL:      c.rawURL(api.TokenPath),
			AuthStyle:     oauth2.AuthStyleInParams,
		},
	}
}

func (c *Client) oauthCtx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.hc)
}

// StartDeviceLogin asks the coordinator for a device code for the program clientID (such as
// "nexctl"; the person approving sees it). It needs no token.
func (c *Client) StartDeviceLogin(ctx context.Context, clientID string) (*DeviceLogin, error) {
	resp, err := c.oauthConfig(clientID).DeviceAuth(c.oauthCtx(ctx))
	if err != nil {
		return nil, fmt.Errorf("client: start device login: %w", oauthError(err))
	}
	return &DeviceLogin{
		UserCode: resp.UserCode, VerificationURI: resp.VerificationURI,
		VerificationURIComplete: resp.VerificationURIComplete, ExpiresAt: resp.Expiry,
		clientID: clientID, resp: resp,
	}, nil
}

// WaitDeviceLogin polls the coordinator, at the interval it asks for, until the person
// approves the login and returns the user API token it issued. It fails with
// [ErrLoginDenied], [ErrLoginExpired], or ctx's error.
func (c *Client) WaitDeviceLogin(ctx context.Context, dl *DeviceLogin) (string, error) {
	tok, err := c.oauthConfig(dl.clientID).DeviceAccessToken(c.oauthCtx(ctx), dl.resp)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = ErrLoginExpired // oauth2 bounds the wait by the code's expiry
		}
		return "", fmt.Errorf("client: wait for device login: %w", oauthError(err))
	}
	return tok.AccessToken, nil
}

// oauthError names the RFC 8628 outcomes callers branch on.
func oauthError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err
	}
	switch re.ErrorCode {
	case api.OAuthAccessDenied:
		return ErrLoginDenied
	case api.OAuthExpiredToken:
		return ErrLoginExpired
	}
	if re.ErrorDescription != "" {
		return fmt.Errorf("%s: %s", re.ErrorCode, re.ErrorDescription)
	}
	return err
}
