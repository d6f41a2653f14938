// Package consoletest starts a coordinator with its web console and a real OpenID provider
// (package oidctest) for tests outside the coordinator package: the end-to-end browser test
// beside this file (headless Chromium through chromedp) and the device-login tests of nexctl.
// Only tests import it.
package consoletest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
	"github.com/nexodus-sdk/nexodus/internal/oidctest"
)

// Users are the provider's accounts, by the name tests use.
var Users = map[string]oidctest.User{
	"alice": {ID: "sub-alice", Username: "alice@example.com", Password: "pw-alice", Email: "alice@example.com", EmailVerified: true},
	"bob":   {ID: "sub-bob", Username: "bob", Password: "pw-bob", Email: "bob@example.com", EmailVerified: true},
}

// ProviderName is the provider's name in the coordinator's URLs (/login/test).
const ProviderName = "test"

// Env is a coordinator with its console on 127.0.0.1 and the provider it trusts.
type Env struct {
	// URL is the coordinator's base URL, also its console's ExternalURL.
	URL        string
	AdminToken string
	OP         *oidctest.Provider
	Server     *coordinator.Server

	t       testing.TB
	mu      sync.Mutex
	clients []*http.Client
}

// Start starts the provider and the coordinator; mod adjusts the coordinator's configuration.
// Both stop when the test ends.
func Start(t testing.TB, mod ...func(*coordinator.Config)) *Env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	e := &Env{t: t, URL: "http://" + srv.Listener.Addr().String()}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	e.AdminToken = hex.EncodeToString(tok)
	var users []oidctest.User
	for _, u := range Users {
		users = append(users, u)
	}
	e.OP = oidctest.New(t, []oidctest.Client{{ID: "nexodus", Secret: "client-secret", RedirectURIs: []string{e.URL + "/auth/callback/" + ProviderName}}}, users...)

	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "coordinator.db"))
	require.NoError(t, err)
	cfg := coordinator.Config{
		Store: st, AdminToken: e.AdminToken, Logger: Logger(t).With("component", "coordinator"),
		Console: &coordinator.ConsoleConfig{
			ExternalURL: e.URL,
			Providers: []coordinator.OIDCProvider{{
				Name: ProviderName, DisplayName: "Test ID", Issuer: e.OP.URL, ClientID: "nexodus", ClientSecret: "client-secret",
			}},
			HTTPClient:         e.Client(),
			DevicePollInterval: time.Second,
		},
	}
	for _, f := range mod {
		f(&cfg)
	}
	e.Server, err = coordinator.New(ctx, cfg)
	require.NoError(t, err)
	srv.Config.Handler = e.Server
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, e.Server.Close())
		require.NoError(t, st.Close())
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, c := range e.clients {
			c.CloseIdleConnections()
		}
	})
	return e
}

// Logger discards logs unless NEXODUS_TEST_LOG is set.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("NEXODUS_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// Client returns an HTTP client whose connections close with the Env.
func (e *Env) Client() *http.Client {
	c := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	e.mu.Lock()
	e.clients = append(e.clients, c)
	e.mu.Unlock()
	return c
}

// Browser returns a Client with a cookie jar, as a browser would keep cookies.
func (e *Env) Browser() *http.Client {
	c := e.Client()
	c.Jar, _ = cookiejar.New(nil)
	return c
}

// SignIn signs browser b in to the console (signing up the first time) as the provider's
// account name.
func (e *Env) SignIn(ctx context.Context, b *http.Client, name string) error {
	u, ok := Users[name]
	if !ok {
		return fmt.Errorf("consoletest: no account %q", name)
	}
	resp, err := e.OP.SignIn(ctx, b, e.URL+"/login/"+ProviderName, u.Username, u.Password)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.String(), e.URL+"/console") {
		return fmt.Errorf("consoletest: sign-in as %s ended at %s (HTTP %d)", name, resp.Request.URL, resp.StatusCode)
	}
	return nil
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// ApproveDevice approves the device login of userCode in the console, as signed-in browser b.
func (e *Env) ApproveDevice(ctx context.Context, b *http.Client, userCode string) error {
	page, err := e.get(ctx, b, "/device?user_code="+url.QueryEscape(userCode))
	if err != nil {
		return err
	}
	m := csrfRE.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, userCode) {
		return fmt.Errorf("consoletest: the device page shows no code %s to approve", userCode)
	}
	form := url.Values{"csrf": {m[1]}, "user_code": {userCode}, "answer": {"approve"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL+"/device", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Approved") {
		return fmt.Errorf("consoletest: approving %s answered HTTP %d", userCode, resp.StatusCode)
	}
	return nil
}

func (e *Env) get(ctx context.Context, b *http.Client, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := b.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("consoletest: GET %s: HTTP %d", path, resp.StatusCode)
	}
	return string(body), nil
}
