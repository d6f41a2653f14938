package coordinator

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

func TestReadiness(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"))
	require.NoError(t, err)
	c, err := New(context.Background(), Config{Store: st})
	require.NoError(t, err)
	defer c.Close()
	get := func(path, token string) int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		c.ServeHTTP(rec, req)
		return rec.Code
	}
	require.Equal(t, 200, get("/readyz", ""), "ready with an open store")
	require.Equal(t, 200, get("/healthz", ""))
	require.NoError(t, st.Close())
	assert.Equal(t, 503, get("/readyz", ""), "readyz with a closed store")
	assert.Equal(t, 200, get("/healthz", ""))
	// Without an admin token configured, nothing authenticates as admin.
	assert.Equal(t, 401, get("/api/v1/users", " "), "empty bearer")
}

// TestCloseRule: every Close — the coordinator's, its hub's, the store's — works once; later
// calls answer an error wrapping net.ErrClosed.
func TestCloseRule(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	require.NoError(t, err)
	c, err := New(context.Background(), Config{Store: st})
	require.NoError(t, err)
	require.NoError(t, c.Close())
	for range 2 {
		assert.ErrorIs(t, c.Close(), net.ErrClosed, "coordinator")
		assert.ErrorIs(t, c.hub.Close(), net.ErrClosed, "hub")
	}
	require.NoError(t, st.Close())
	assert.ErrorIs(t, st.Close(), net.ErrClosed, "store")
}

// TestBadInput checks that malformed requests get the right 4xx and an api.Error body (env.do
// checks the body shape of every error).
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	key := e.newRegKey(alice, alice.PersonalOrg, api.CreateRegKeyRequest{})
	d := e.register(key.Secret, "", "ok", newKey(t), 201)
	good := newKey(t).Pub
	cases := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      string
	}{
		{"malformed json", "POST", "/api/v1/organizations", alice.Token, `{"name":`, 400, api.CodeBadRequest},
		{"unknown field", "POST", "/api/v1/organizations", alice.Token, `{"name":"x","color":"red"}`, 400, api.CodeBadRequest},
		{"trailing data", "POST", "/api/v1/organizations", alice.Token, `{"name":"x"} {"name":"y"}`, 400, api.CodeBadRequest},
		{"empty body", "POST", "/api/v1/organizations", alice.Token, ``, 400, api.CodeBadRequest},
		{"wrong type", "POST", "/api/v1/organizations", alice.Token, `{"name":5}`, 400, api.CodeBadRequest},
		{"oversized", "POST", "/api/v1/organizations", alice.Token, `{"name":"` + strings.Repeat("a", api.MaxRequestBody) + `"}`, 413, api.CodeTooLarge},
		{"oversized whitespace", "POST", "/api/v1/devices", key.Secret, strings.Repeat(" ", api.MaxRequestBody+1) + "{}", 413, api.CodeTooLarge},
		{"bad name", "POST", "/api/v1/organizations", alice.Token, `{"name":"a b"}`, 400, api.CodeBadRequest},
		{"taken name", "POST", "/api/v1/organizations", alice.Token, `{"name":"alice"}`, 409, api.CodeConflict},
		{"taken username", "POST", "/api/v1/users", adminToken, `{"username":"alice"}`, 409, api.CodeConflict},
		{"bad id", "GET", "/api/v1/organizations/not-an-id", alice.Token, nil, 400, api.CodeBadRequest},
		{"uppercase id", "GET", "/api/v1/devices/" + strings.ToUpper(d.ID), alice.Token, nil, 400, api.CodeBadRequest},
		{"unknown id", "GET", "/api/v1/devices/00000000-0000-4000-8000-000000000000", alice.Token, nil, 404, api.CodeNotFound},
		{"bad key", "POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{PublicKey: "abc", Hostname: "h"}, 400, api.CodeBadRequest},
		{"short key", "POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{PublicKey: "AAAA", Hostname: "h"}, 400, api.CodeBadRequest},
		{"low-order key", "POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{PublicKey: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", Hostname: "h"}, 400, api.CodeBadRequest},
		{"bad hostname", "POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{PublicKey: good, Hostname: "a.b"}, 400, api.CodeBadRequest},
		{"long hostname", "POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{PublicKey: good, Hostname: strings.Repeat("a", 64)}, 400, api.CodeBadRequest},
		{"bad endpoint", "POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{PublicKey: good, Hostname: "h", Endpoints: []api.Endpoint{{Source: "local", Address: "1.2.3.4"}}}, 400, api.CodeBadRequest},
		{"bad endpoint source", "POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{PublicKey: good, Hostname: "h", Endpoints: []api.Endpoint{{Source: "x", Address: "1.2.3.4:5"}}}, 400, api.CodeBadRequest},
		{"too many endpoints", "POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{PublicKey: good, Hostname: "h", Endpoints: make([]api.Endpoint, api.MaxEndpoints+1)}, 400, api.CodeBadRequest},
		{"bad child prefix", "POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{PublicKey: good, Hostname: "h", ChildPrefixes: []string{"10.0.0.1/8"}}, 400, api.CodeBadRequest},
		{"child prefix overlaps org", "POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{PublicKey: good, Hostname: "h", ChildPrefixes: []string{"100.64.0.0/10"}}, 400, api.CodeBadRequest},
		{"key into other org", "POST", "/api/v1/devices", key.Secret, api.RegisterDeviceRequest{OrganizationID: "00000000-0000-4000-8000-000000000000", PublicKey: good, Hostname: "h"}, 403, api.CodeForbidden},
		{"user without org", "POST", "/api/v1/devices", alice.Token, api.RegisterDeviceRequest{PublicKey: good, Hostname: "h"}, 400, api.CodeBadRequest},
		{"bad role", "POST", "/api/v1/invitations", alice.Token, api.CreateInvitationRequest{OrganizationID: alice.PersonalOrg, Username: "alice", Role: "admin"}, 400, api.CodeBadRequest},
		{"negative expiry", "POST", "/api/v1/reg-keys", alice.Token, api.CreateRegKeyRequest{OrganizationID: alice.PersonalOrg, ExpiresInSeconds: -5}, 400, api.CodeBadRequest},
		{"huge expiry", "POST", "/api/v1/reg-keys", alice.Token, api.CreateRegKeyRequest{OrganizationID: alice.PersonalOrg, ExpiresInSeconds: 1 << 62}, 400, api.CodeBadRequest},
		{"no route", "GET", "/api/v1/nothing", alice.Token, nil, 404, api.CodeNotFound},
		{"wrong method", "PUT", "/api/v1/users", adminToken, nil, 405, api.CodeBadRequest},
		{"patch bad hostname", "PATCH", "/api/v1/devices/" + d.ID, d.Token, `{"hostname":""}`, 400, api.CodeBadRequest},
	}
	for _, c := range cases {
		t.Log(c.name)
		e.fails(c.status, c.code, c.method, c.path, c.token, c.body)
	}
	// Health endpoints.
	var h api.Health
	e.call("GET", "/healthz", "", nil, 200, &h)
	e.call("GET", "/readyz", "", nil, 200, &h)
}

// TestExternalAuthenticator plugs a stand-in for OIDC: tokens without our prefixes go to it.
func TestExternalAuthenticator(t *testing.T) {
	var aliceID string
	e := newEnv(t, func(c *Config) {
		c.Authenticator = AuthenticatorFunc(func(r *http.Request) (Principal, error) {
			if tok, _ := bearerToken(r); tok == "oidc-alice" && aliceID != "" {
				return Principal{Kind: KindUser, UserID: aliceID}, nil
			}
			return Principal{}, errorf(ErrUnauthorized, "unknown token")
		})
	})
	alice := e.newUser("alice")
	aliceID = alice.ID
	var me api.User
	e.call("GET", "/api/v1/users/me", "oidc-alice", nil, 200, &me)
	require.Equal(t, alice.ID, me.ID)
	e.fails(401, "", "GET", "/api/v1/users/me", "oidc-bob", nil)
	// The admin token still wins, and is not passed to the external authenticator.
	e.call("GET", "/api/v1/users", adminToken, nil, 200, nil)
}

// recordingHandler keeps the level and message of every log record.
type recordingHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) atLeast(l slog.Level) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		if r.Level >= l {
			out = append(out, r.Message)
		}
	}
	return out
}

// TestClientGoneIsNotAServerError: a request whose client has gone away (its context is
// canceled) fails inside the store, but that is neither a 503 nor an error-level log.
func TestClientGoneIsNotAServerError(t *testing.T) {
	rec := &recordingHandler{}
	e := newEnv(t, func(c *Config) { c.Logger = slog.New(rec) })
	alice := e.newUser("alice")
	for _, path := range []string{"/users/me", "/organizations/" + alice.PersonalOrg + "/devices", "/devices"} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req := httptest.NewRequestWithContext(ctx, "GET", api.Prefix+path, nil)
		req.Header.Set("Authorization", "Bearer "+alice.Token)
		w := httptest.NewRecorder()
		e.coord.ServeHTTP(w, req)
		assert.Less(t, w.Code, 500, "GET %s with a canceled context", path)
	}
	assert.Empty(t, rec.atLeast(slog.LevelError), "error-level logs for clients that went away")
}

// TestStreamOutlivesReadTimeout: the http.Server's ReadTimeout (30s, as examples/coordinator
// sets it) bounds reading requests and does not end event streams, nor does its IdleTimeout.
func TestStreamOutlivesReadTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Heartbeat = 10 * time.Second })
		require.Equal(t, 30*time.Second, e.hs.ReadTimeout)
		alice := e.newUser("alice")
		s := e.openStream(orgPath(alice.PersonalOrg, "/events"), alice.Token, "")
		defer s.close()
		s.next()
		time.Sleep(5 * time.Minute) // ten read timeouts, two and a half idle timeouts
		synctest.Wait()
		require.EqualValues(t, 30, s.pings.Load(), "heartbeats")
		e.register(alice.Token, alice.PersonalOrg, "late", newKey(t), 201)
		require.Equal(t, api.EventDeviceAdded, s.next().Type)
	})
}
