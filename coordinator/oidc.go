package coordinator

// The OpenID Connect relying party: each configured provider (discovered on first use), the
// authorization-code exchange with PKCE, ID token verification (signature against the
// issuer's keys, issuer, audience, expiry, nonce), who may sign in, and the identity → user
// rule: the first sign-in creates the user and their personal organization, later ones find
// the same user by (issuer, subject).

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// oidcProvider is one configured OpenID provider.
type oidcProvider struct {
	OIDCProvider
	callbackURL string
	hc          *http.Client
	now         func() time.Time

	mu   sync.Mutex
	disc *discovered // nil until discovery succeeds
}

// discovered is what discovery of a provider yields.
type discovered struct {
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
}

func newOIDCProvider(p OIDCProvider, externalURL string, hc *http.Client, now func() time.Time) *oidcProvider {
	return &oidcProvider{OIDCProvider: p, callbackURL: externalURL + "/auth/callback/" + p.Name, hc: hc, now: now}
}

// ctx carries the provider's HTTP client to go-oidc and oauth2.
func (p *oidcProvider) ctx(ctx context.Context) context.Context {
	return context.WithValue(oidc.ClientContext(ctx, p.hc), oauth2.HTTPClient, p.hc)
}

// discover reads the provider's configuration the first time it is needed and keeps it; a
// failure is retried on the next sign-in, so a coordinator starts while a provider is down.
func (p *oidcProvider) discover(ctx context.Context) (*discovered, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disc != nil {
		return p.disc, nil
	}
	prov, err := oidc.NewProvider(p.ctx(ctx), p.Issuer)
	if err != nil {
		return nil, errorf(ErrUnavailable, "cannot reach the OpenID provider %s (%s): %v", p.DisplayName, p.Issuer, err)
	}
	p.disc = &discovered{
		provider: prov,
		verifier: prov.Verifier(&oidc.Config{ClientID: p.ClientID, Now: p.now}),
		oauth: &oauth2.Config{
			ClientID: p.ClientID, ClientSecret: p.ClientSecret, Endpoint: prov.Endpoint(),
			RedirectURL: p.callbackURL, Scopes: append([]string{oidc.ScopeOpenID}, p.Scopes...),
		},
	}
	return p.disc, nil
}

// authURL is where a sign-in with state, nonce and the PKCE verifier starts.
func (p *oidcProvider) authURL(ctx context.Context, state, nonce, verifier string) (string, error) {
	d, err := p.discover(ctx)
	if err != nil {
		return "", err
	}
	return d.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), nil
}

// identityClaims is what the coordinator takes from a verified ID token (and, for what the
// token leaves out, from the userinfo endpoint).
type identityClaims struct {
	Issuer            string   `json:"-"`
	Subject           string   `json:"sub"`
	Email             string   `json:"email"`
	EmailVerified     flexBool `json:"email_verified"`
	PreferredUsername string   `json:"preferred_username"`
	Name              string   `json:"name"`
}

// flexBool reads a JSON boolean, or the strings "true" and "false" that some providers send.
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	data = bytes.Trim(data, `"`)
	switch string(data) {
	case "true":
		*b = true
	case "false", "null", "":
		*b = false
	default:
		return fmt.Errorf("email_verified: want a boolean, got %s", data)
	}
	return nil
}

// Sign-in failures the person is told about; each maps to a status through statusOf.
var (
	errSignInFailed = errorf(ErrUnauthorized, "the sign-in could not be verified; start again")
)

// exchange redeems an authorization code with its PKCE verifier and verifies the ID token the
// provider answers: its signature against the issuer's published keys, the issuer, the
// audience (our client ID), its expiry, and that it carries the nonce of this sign-in.
func (p *oidcProvider) exchange(ctx context.Context, code, verifier, nonce string) (identityClaims, error) {
	d, err := p.discover(ctx)
	if err != nil {
		return identityClaims{}, err
	}
	tok, err := d.oauth.Exchange(p.ctx(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return identityClaims{}, fmt.Errorf("%w: code exchange with %s: %w", errSignInFailed, p.Name, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return identityClaims{}, fmt.Errorf("%w: %s answered no ID token", errSignInFailed, p.Name)
	}
	idt, claims, err := p.verify(ctx, d, raw, nonce)
	if err != nil {
		return identityClaims{}, err
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return identityClaims{}, fmt.Errorf("%w: %w", errSignInFailed, err)
		}
	}
	if claims.Email == "" || claims.PreferredUsername == "" {
		p.addUserInfo(ctx, d, tok, &claims)
	}
	return claims, nil
}

// verify checks a raw ID token and its nonce and returns its claims.
func (p *oidcProvider) verify(ctx context.Context, d *discovered, raw, nonce string) (*oidc.IDToken, identityClaims, error) {
	idt, err := d.verifier.Verify(p.ctx(ctx), raw)
	if err != nil {
		return nil, identityClaims{}, fmt.Errorf("%w: ID token from %s: %w", errSignInFailed, p.Name, err)
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, identityClaims{}, fmt.Errorf("%w: ID token from %s does not carry this sign-in's nonce", errSignInFailed, p.Name)
	}
	var c identityClaims
	if err := idt.Claims(&c); err != nil {
		return nil, identityClaims{}, fmt.Errorf("%w: ID token claims: %w", errSignInFailed, err)
	}
	c.Issuer, c.Subject = idt.Issuer, idt.Subject
	if c.Subject == "" || len(c.Subject) > 255 {
		return nil, identityClaims{}, fmt.Errorf("%w: ID token subject missing or too long", errSignInFailed)
	}
	return idt, c, nil
}

// addUserInfo fills in the email address and preferred username from the userinfo endpoint
// when the ID token left them out (many providers put them only there). The answer counts
// only for the same subject (OpenID Connect Core §5.3.2); failures leave the claims as they
// are.
func (p *oidcProvider) addUserInfo(ctx context.Context, d *discovered, tok *oauth2.Token, c *identityClaims) {
	if d.provider.UserInfoEndpoint() == "" {
		return
	}
	ui, err := d.provider.UserInfo(p.ctx(ctx), oauth2.StaticTokenSource(tok))
	if err != nil || ui.Subject != c.Subject {
		return
	}
	var extra struct {
		PreferredUsername string `json:"preferred_username"`
		Name              string `json:"name"`
	}
	_ = ui.Claims(&extra)
	if c.Email == "" {
		c.Email, c.EmailVerified = ui.Email, flexBool(ui.EmailVerified)
	}
	if c.PreferredUsername == "" {
		c.PreferredUsername = extra.PreferredUsername
	}
	if c.Name == "" {
		c.Name = extra.Name
	}
}

// admits applies the provider's allow-lists: with AllowedDomains or AllowedEmails set, only a
// verified email address of an allowed domain, or an allowed address, may sign in.
func (p *oidcProvider) admits(c identityClaims) error {
	if len(p.AllowedDomains) == 0 && len(p.AllowedEmails) == 0 {
		return nil
	}
	email := strings.ToLower(strings.TrimSpace(c.Email))
	if email == "" || !bool(c.EmailVerified) {
		return errorf(ErrForbidden, "%s has not verified your email address, and this coordinator admits only verified addresses", p.DisplayName)
	}
	if slices.Contains(p.AllowedEmails, email) {
		return nil
	}
	if at := strings.LastIndexByte(email, '@'); at >= 0 && slices.Contains(p.AllowedDomains, email[at+1:]) {
		return nil
	}
	return errorf(ErrForbidden, "%s may not sign in to this coordinator: ask its operator to allow your address or domain", email)
}

// signedIn is the outcome of a sign-in.
type signedIn struct {
	UserID  string
	Created bool // the user was made now
	Linked  bool // the identity was linked to an existing user now
}

// signIn turns a verified identity into a user: the user it is linked to; else, when
// linkUserID is set (a signed-in user confirmed linking this provider), that user, now linked;
// else a new user with a personal organization, named by usernameBase.
func (s *Server) signIn(ctx context.Context, p *oidcProvider, c identityClaims, linkUserID string) (signedIn, error) {
	if err := p.admits(c); err != nil {
		return signedIn{}, err
	}
	out, err := inTx(ctx, s.store, func(tx store.Tx) (signedIn, error) {
		id, err := tx.GetIdentity(ctx, c.Issuer, c.Subject)
		switch {
		case err == nil:
			if linkUserID != "" && id.UserID != linkUserID {
				return signedIn{}, errorf(ErrConflict, "this %s account is already linked to another user", p.DisplayName)
			}
			return signedIn{UserID: id.UserID}, nil
		case !errors.Is(err, store.ErrNotFound):
			return signedIn{}, err
		}
		ident := store.Identity{Issuer: c.Issuer, Subject: c.Subject, Email: truncate(c.Email, 320), CreatedAt: s.now()}
		if linkUserID != "" {
			ident.UserID = linkUserID
			return signedIn{UserID: linkUserID, Linked: true}, notFound(tx.CreateIdentity(ctx, ident), "user not found")
		}
		name, err := s.freeUsername(ctx, tx, usernameBase(c.PreferredUsername, c.Email))
		if err != nil {
			return signedIn{}, err
		}
		u, _, err := s.createUserTx(ctx, tx, name)
		if err != nil {
			return signedIn{}, err
		}
		ident.UserID = u.ID
		return signedIn{UserID: u.ID, Created: true}, conflict(tx.CreateIdentity(ctx, ident), "this %s account was just linked; sign in again", p.DisplayName)
	})
	if err != nil {
		return signedIn{}, err
	}
	switch {
	case out.Created:
		s.log.Info("user signed up", "user_id", out.UserID, "provider", p.Name)
	case out.Linked:
		s.log.Info("identity linked", "user_id", out.UserID, "provider", p.Name)
	default:
		s.log.Debug("user signed in", "user_id", out.UserID, "provider", p.Name)
	}
	return out, nil
}

// flexBool is read by encoding/json, through go-oidc's Claims.
var _ json.Unmarshaler = (*flexBool)(nil)
