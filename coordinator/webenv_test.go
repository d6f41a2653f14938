package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
	"github.com/nexodus-sdk/nexodus/internal/oidctest"
)

// webEnv is a coordinator with the console on a real TCP listener, signing people in with a
// real OpenID provider (oidctest, zitadel/oidc) over real HTTP.
type webEnv struct {
	t     *testing.T
	url   string
	op    *oidctest.Provider
	coord *Server
	cfg   *ConsoleConfig
	hcs   []*http.Client
}

const (
	testClientID     = "nexodus-test"
	testClientSecret = "test-client-secret"
)

// webUsers are the provider's accounts, by username.
var webUsers = map[string]oidctest.User{
	"alice":   {ID: "sub-alice", Username: "alice@example.com", Password: "pw-alice", Email: "alice@example.com", EmailVerified: true},
	"bob":     {ID: "sub-bob", Username: "bob", Password: "pw-bob", Email: "bob@other.example", EmailVerified: true},
	"mallory": {ID: "sub-mallory", Username: "mallory", Password: "pw-mallory", Email: "mallory@example.com", EmailVerified: false},
}

// newWebEnv starts a provider with webUsers and a coordinator that trusts it as "test"; mod
// adjusts the console's configuration.
func newWebEnv(t *testing.T, mod ...func(*ConsoleConfig)) *webEnv {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	e := &webEnv{t: t, url: "http://" + srv.Listener.Addr().String()}
	var users []oidctest.User
	for _, u := range webUsers {
		users = append(users, u)
	}
	e.op = oidctest.New(t, []oidctest.Client{{ID: testClientID, Secret: testClientSecret, RedirectURIs: []string{e.url + "/auth/callback/test"}}}, users...)
	opHC := e.client(false)
	e.cfg = &ConsoleConfig{
		ExternalURL: e.url,
		Providers: []OIDCProvider{{
			Name: "test", DisplayName: "Test ID", Issuer: e.op.URL, ClientID: testClientID, ClientSecret: testClientSecret,
		}},
		HTTPClient:         opHC,
		DevicePollInterval: time.Second,
	}
	for _, f := range mod {
		f(e.cfg)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "coord.db"))
	require.NoError(t, err)
	e.coord, err = New(ctx, Config{Store: st, AdminToken: adminToken, Logger: testLogger(), Console: e.cfg})
	require.NoError(t, err)
	srv.Config.Handler = e.coord
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, e.coord.Close())
		require.NoError(t, st.Close())
		for _, hc := range e.hcs {
			hc.CloseIdleConnections()
		}
	})
	return e
}

// client returns an HTTP client closed with the env; a browser keeps cookies.
func (e *webEnv) client(browser bool) *http.Client {
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	if browser {
		jar, err := cookiejar.New(nil)
		require.NoError(e.t, err)
		hc.Jar = jar
	}
	e.hcs = append(e.hcs, hc)
	return hc
}

// stopAt makes hc stop following redirects at paths starting with prefix.
func stopAt(hc *http.Client, prefix string) {
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.Path, prefix) {
			return http.ErrUseLastResponse
		}
		return nil
	}
}

// signIn signs a fresh browser in as the provider's account name and returns the browser and
// the console page it lands on.
func (e *webEnv) signIn(name string) (*http.Client, string) {
	e.t.Helper()
	b := e.client(true)
	st, body := e.signInWith(b, name)
	require.Equal(e.t, http.StatusOK, st, "sign in as %s: %s", name, body)
	return b, body
}

// signInWith signs browser b in as name and returns the final status and page.
func (e *webEnv) signInWith(b *http.Client, name string) (int, string) {
	e.t.Helper()
	u := webUsers[name]
	resp, err := e.op.SignIn(context.Background(), b, e.url+"/login/test", u.Username, u.Password)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, string(body)
}

// callbackURL runs a sign-in as name up to the provider's redirect back, without following
// it: the URL carrying code and state.
func (e *webEnv) callbackURL(b *http.Client, name string) string {
	e.t.Helper()
	stopAt(b, "/auth/callback/")
	defer func() { b.CheckRedirect = nil }()
	u := webUsers[name]
	resp, err := e.op.SignIn(context.Background(), b, e.url+"/login/test", u.Username, u.Password)
	require.NoError(e.t, err)
	resp.Body.Close()
	require.Equal(e.t, http.StatusFound, resp.StatusCode)
	loc := resp.Header.Get("Location")
	require.Contains(e.t, loc, "/auth/callback/test?")
	return loc
}

// get fetches a page with browser b.
func (e *webEnv) get(b *http.Client, path string) (int, string) {
	e.t.Helper()
	resp, err := b.Get(e.url + path)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, string(body)
}

// post submits a console form with browser b.
func (e *webEnv) post(b *http.Client, path string, form url.Values) (int, string) {
	e.t.Helper()
	resp, err := b.PostForm(e.url+path, form)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, string(body)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token of a console page.
func (e *webEnv) csrf(page string) string {
	e.t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	require.NotNil(e.t, m, "no CSRF token in the page")
	return m[1]
}

// api calls the JSON API with a bearer token, requires want and decodes the answer into out.
func (e *webEnv) api(method, path, token string, body any, want int, out any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		require.NoError(e.t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client(false).Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	require.Equal(e.t, want, resp.StatusCode, "%s %s: %s", method, path, b)
	if out != nil {
		require.NoError(e.t, json.Unmarshal(b, out))
	}
}
