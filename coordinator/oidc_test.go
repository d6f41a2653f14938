package coordinator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// users lists the coordinator's users by username.
func (e *webEnv) users() map[string]api.User {
	e.t.Helper()
	var us []api.User
	e.api("GET", "/api/v1/users", adminToken, nil, http.StatusOK, &us)
	out := map[string]api.User{}
	for _, u := range us {
		out[u.Username] = u
	}
	return out
}

func TestSignUpCreatesUserAndPersonalOrganization(t *testing.T) {
	e := newWebEnv(t)
	b, page := e.signIn("alice")
	assert.Contains(t, page, "Your organizations")
	assert.Contains(t, page, "Account (alice)", "the username comes from preferred_username's local part")

	us := e.users()
	require.Contains(t, us, "alice")
	orgs, err := inTx(context.Background(), e.coord.store, func(tx store.Tx) ([]store.Organization, error) {
		return tx.ListOrganizationsForUser(context.Background(), us["alice"].ID)
	})
	require.NoError(t, err)
	require.Len(t, orgs, 1)
	assert.True(t, orgs[0].Personal)
	assert.Equal(t, "alice", orgs[0].Name)

	// Signing in again, in another browser, finds the same user.
	_, page = e.signIn("alice")
	assert.Contains(t, page, "Account (alice)")
	assert.Len(t, e.users(), len(us))

	// The session works for the console's pages, and signing out ends it.
	st, page := e.get(b, "/console/tokens")
	require.Equal(t, http.StatusOK, st)
	st, _ = e.post(b, "/logout", url.Values{csrfField: {e.csrf(page)}})
	require.Equal(t, http.StatusOK, st) // followed to the sign-in page
	stopAt(b, "/login")
	resp, err := b.Get(e.url + "/console")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "signed out: the console sends the browser to sign in")
	assert.Equal(t, "/login?return_to=%2Fconsole", resp.Header.Get("Location"))
}

func TestSignUpTakesNumberedUsernameOnCollision(t *testing.T) {
	e := newWebEnv(t)
	e.api("POST", "/api/v1/users", adminToken, api.CreateUserRequest{Username: "alice"}, http.StatusCreated, nil)
	_, page := e.signIn("alice")
	assert.Contains(t, page, "Account (alice2)")
	assert.Contains(t, e.users(), "alice2")
}

func TestReplayedStateIsRefused(t *testing.T) {
	e := newWebEnv(t)
	b := e.client(true)
	cb := e.callbackURL(b, "bob")
	st, _ := e.get(b, cb[len(e.url):])
	require.Equal(t, http.StatusOK, st, "the first answer signs in")
	st, page := e.get(b, cb[len(e.url):])
	assert.Equal(t, http.StatusUnauthorized, st)
	assert.Contains(t, page, "expired or was already used")
}

func TestCallbackInAnotherBrowserIsRefused(t *testing.T) {
	e := newWebEnv(t)
	cb := e.callbackURL(e.client(true), "bob")
	// An attacker's own sign-in answer opened in the victim's browser (login CSRF).
	st, page := e.get(e.client(true), cb[len(e.url):])
	assert.Equal(t, http.StatusUnauthorized, st)
	assert.Contains(t, page, "started in another browser")
	assert.NotContains(t, e.users(), "bob")
}

func TestAllowedDomainsNeedVerifiedEmail(t *testing.T) {
	e := newWebEnv(t, func(c *ConsoleConfig) { c.Providers[0].AllowedDomains = []string{"Example.com"} })
	st, page := e.signInWith(e.client(true), "mallory") // @example.com, not verified
	assert.Equal(t, http.StatusForbidden, st)
	assert.Contains(t, page, "has not verified your email address")
	st, page = e.signInWith(e.client(true), "bob") // verified, other domain
	assert.Equal(t, http.StatusForbidden, st)
	assert.Contains(t, page, "may not sign in")
	st, _ = e.signInWith(e.client(true), "alice") // verified @example.com
	assert.Equal(t, http.StatusOK, st)
	us := e.users()
	assert.Contains(t, us, "alice")
	assert.NotContains(t, us, "mallory")
	assert.NotContains(t, us, "bob")
}

func TestAllowedEmails(t *testing.T) {
	e := newWebEnv(t, func(c *ConsoleConfig) { c.Providers[0].AllowedEmails = []string{"bob@other.example"} })
	st, _ := e.signInWith(e.client(true), "bob")
	assert.Equal(t, http.StatusOK, st)
	st, _ = e.signInWith(e.client(true), "alice")
	assert.Equal(t, http.StatusForbidden, st)
}

// TestIDTokenVerification feeds the relying party's verifier tokens a provider would not
// issue: each must fail, against the provider's real published keys.
func TestIDTokenVerification(t *testing.T) {
	e := newWebEnv(t)
	p := e.coord.web.providers["test"]
	ctx := context.Background()
	d, err := p.discover(ctx)
	require.NoError(t, err)
	good := map[string]any{"sub": "sub-bob", "aud": testClientID, "nonce": "n-1", "email": "bob@other.example"}
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for kk, vv := range good {
			c[kk] = vv
		}
		c[k] = v
		return c
	}
	_, c, err := p.verify(ctx, d, e.op.IDToken(t, good), "n-1")
	require.NoError(t, err, "a token the provider signed verifies")
	assert.Equal(t, "sub-bob", c.Subject)
	assert.Equal(t, e.op.URL, c.Issuer)

	for name, tok := range map[string]string{
		"forged signature": e.op.ForgedIDToken(t, good),
		"expired":          e.op.IDToken(t, with("exp", time.Now().Add(-time.Minute).Unix())),
		"wrong audience":   e.op.IDToken(t, with("aud", "someone-else")),
		"wrong issuer":     e.op.IDToken(t, with("iss", "https://evil.example")),
		"wrong nonce":      e.op.IDToken(t, with("nonce", "n-2")),
		"no nonce":         e.op.IDToken(t, with("nonce", "")),
		"not a JWT":        "not.a.jwt",
	} {
		_, _, err := p.verify(ctx, d, tok, "n-1")
		assert.ErrorIs(t, err, ErrUnauthorized, name)
	}
}

func TestFormsNeedCSRFToken(t *testing.T) {
	e := newWebEnv(t)
	b, _ := e.signIn("bob")
	_, page := e.get(b, "/console/tokens")
	token := e.csrf(page)

	st, page := e.post(b, "/console/tokens", url.Values{"name": {"laptop"}})
	assert.Equal(t, http.StatusForbidden, st, "no CSRF token")
	assert.Contains(t, page, "did not come from this console")
	st, _ = e.post(b, "/console/tokens", url.Values{"name": {"laptop"}, csrfField: {token + "x"}})
	assert.Equal(t, http.StatusForbidden, st, "a wrong CSRF token")
	_, other := e.signIn("alice")
	st, _ = e.post(b, "/console/tokens", url.Values{"name": {"laptop"}, csrfField: {e.csrf(other)}})
	assert.Equal(t, http.StatusForbidden, st, "another session's CSRF token")

	st, page = e.post(b, "/console/tokens", url.Values{"name": {"laptop"}, "expires": {"3600"}, csrfField: {token}})
	require.Equal(t, http.StatusCreated, st, page)
	assert.Contains(t, page, "nxu_")
}

func TestSessionCookieOfAnotherCoordinatorIsRefused(t *testing.T) {
	a, other := newWebEnv(t), newWebEnv(t)
	b, _ := a.signIn("bob")
	au, _ := url.Parse(a.url)
	cookies := b.Jar.Cookies(au)
	require.NotEmpty(t, cookies)

	req, err := http.NewRequest("GET", other.url+"/console", nil)
	require.NoError(t, err)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	hc := other.client(false)
	stopAt(hc, "/login")
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Location"), "/login")
}

func TestSessionCookieAttributes(t *testing.T) {
	e := newWebEnv(t)
	b := e.client(true)
	cb := e.callbackURL(b, "bob")
	stopAt(b, "/console")
	resp, err := b.Get(cb)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	var sess *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			sess = c
		}
	}
	require.NotNil(t, sess)
	assert.True(t, sess.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, sess.SameSite)
	assert.False(t, sess.Secure, "plain-HTTP console")
	assert.Positive(t, sess.MaxAge)

	// The store keeps only the secret's hash.
	id, secret, ok := splitToken(sess.Value, sessionPrefix)
	require.True(t, ok)
	st, err := inTx(context.Background(), e.coord.store, func(tx store.Tx) (store.Session, error) { return tx.GetSession(context.Background(), id) })
	require.NoError(t, err)
	assert.Equal(t, hashSecret(secret), st.SecretHash)

	// Signing in again rotates the session: the old one is gone.
	b.CheckRedirect = nil
	st2, _ := e.signInWith(b, "bob")
	require.Equal(t, http.StatusOK, st2)
	_, err = inTx(context.Background(), e.coord.store, func(tx store.Tx) (store.Session, error) { return tx.GetSession(context.Background(), id) })
	assert.ErrorIs(t, err, store.ErrNotFound)
}

func TestSecureCookiesUnderTLS(t *testing.T) {
	w := &web{secure: true, s: &Server{cfg: Config{Now: time.Now}}}
	rec := httptest.NewRecorder()
	w.setCookie(rec, sessionCookie, "v", time.Hour)
	c := rec.Result().Cookies()[0]
	assert.Equal(t, "__Host-"+sessionCookie, c.Name)
	assert.True(t, c.Secure)
	assert.Equal(t, "/", c.Path)
	assert.Empty(t, c.Domain)
}
