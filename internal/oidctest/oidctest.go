// Package oidctest runs a real OpenID provider inside a test: zitadel/oidc's op package with
// the module's own example storage and login page, served on 127.0.0.1. It publishes its
// discovery document and signing keys, signs ID tokens with RS256, checks PKCE, and signs
// people in with a username and password form, so a relying party under test verifies real
// signatures. It also mints tokens of its own (expired, forged, for another audience) for
// testing what a relying party refuses. Only tests import it.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"golang.org/x/text/language"
)

// User is an account at the provider.
type User struct {
	ID            string // the subject
	Username      string // typed on the login page; the preferred_username claim
	Password      string
	Email         string
	EmailVerified bool
}

// Client is a relying party registered at the provider.
type Client struct {
	ID, Secret   string
	RedirectURIs []string
}

// Provider is a running OpenID provider.
type Provider struct {
	// URL is the issuer, "http://127.0.0.1:PORT".
	URL     string
	Storage *storage.Storage
	srv     *httptest.Server
}

// New starts a provider that knows clients and users; it stops when the test ends.
func New(t testing.TB, clients []Client, users ...User) *Provider {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	cs := map[string]*storage.Client{}
	for _, c := range clients {
		cs[c.ID] = storage.WebClient(c.ID, c.Secret, c.RedirectURIs...)
	}
	us := userStore{}
	for _, u := range users {
		us[u.ID] = &storage.User{
			ID: u.ID, Username: u.Username, Password: u.Password, Email: u.Email, EmailVerified: u.EmailVerified,
			FirstName: u.Username, LastName: "Test", PreferredLanguage: language.English,
		}
	}
	st := storage.NewStorageWithClients(us, cs)
	srv.Config.Handler = exampleop.SetupServer(issuer, st, nil, false)
	srv.Start()
	t.Cleanup(srv.Close)
	return &Provider{URL: issuer, Storage: st, srv: srv}
}

// userStore is the example storage's user directory, filled by the test.
type userStore map[string]*storage.User

func (u userStore) GetUserByID(id string) *storage.User { return u[id] }

func (u userStore) GetUserByUsername(name string) *storage.User {
	for _, v := range u {
		if v.Username == name {
			return v
		}
	}
	return nil
}

func (u userStore) ExampleClientID() string { return "service" }

// SignIn follows startURL (a relying party's sign-in link) with hc to the provider's login
// page, signs in there as username, and returns the response the form's answer leads to
// (after the redirects hc follows: with a cookie jar, back to the relying party).
func (p *Provider) SignIn(ctx context.Context, hc *http.Client, startURL, username, password string) (*http.Response, error) {
	id, err := p.LoginPage(ctx, hc, startURL)
	if err != nil {
		return nil, err
	}
	return p.SubmitLogin(ctx, hc, id, username, password)
}

// LoginPage follows startURL to the provider's login page and returns the auth request ID
// the login form carries.
func (p *Provider) LoginPage(ctx context.Context, hc *http.Client, startURL string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, startURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("oidctest: open %s: %w", startURL, err)
	}
	resp.Body.Close()
	u := resp.Request.URL
	id := u.Query().Get("authRequestID")
	if !strings.HasPrefix(u.String(), p.URL+"/login/username") || id == "" {
		return "", fmt.Errorf("oidctest: %s led to %s (HTTP %d), not to the provider's login page", startURL, u, resp.StatusCode)
	}
	return id, nil
}

// SubmitLogin posts the login form of auth request id.
func (p *Provider) SubmitLogin(ctx context.Context, hc *http.Client, id, username, password string) (*http.Response, error) {
	form := url.Values{"id": {id}, "username": {username}, "password": {password}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/login/username", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return hc.Do(req)
}

// IDToken returns an ID token with claims signed by the provider's own key (what its token
// endpoint would sign), so a test can make one that is expired or for another audience.
// Claims iss, iat and exp default to the provider, now and in an hour.
func (p *Provider) IDToken(t testing.TB, claims map[string]any) string {
	t.Helper()
	k, err := p.Storage.SigningKey(context.Background())
	require.NoError(t, err)
	return sign(t, k.Key(), k.ID(), p.withDefaults(claims))
}

// ForgedIDToken is IDToken signed by a key the provider never published, under the key ID of
// its real one.
func (p *Provider) ForgedIDToken(t testing.TB, claims map[string]any) string {
	t.Helper()
	k, err := p.Storage.SigningKey(context.Background())
	require.NoError(t, err)
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return sign(t, forger, k.ID(), p.withDefaults(claims))
}

func (p *Provider) withDefaults(claims map[string]any) map[string]any {
	out := map[string]any{"iss": p.URL, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		out[k] = v
	}
	return out
}

func sign(t testing.TB, key any, kid string, claims map[string]any) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	require.NoError(t, err)
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	jws, err := signer.Sign(payload)
	require.NoError(t, err)
	s, err := jws.CompactSerialize()
	require.NoError(t, err)
	return s
}
