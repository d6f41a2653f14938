package coordinator

import (
	"net/http"
	"strings"
	"testing"

	"github.com/nexodus-sdk/nexodus/api"
)

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
		st, code := e.errCode(c.method, c.path, c.token, c.body)
		if st != c.status || code != c.code {
			t.Errorf("%s: got %d %s, want %d %s", c.name, st, code, c.status, c.code)
		}
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
	if me.ID != alice.ID {
		t.Fatalf("me %+v", me)
	}
	if st, _ := e.errCode("GET", "/api/v1/users/me", "oidc-bob", nil); st != 401 {
		t.Fatalf("unknown external token: %d", st)
	}
	// The admin token still wins, and is not passed to the external authenticator.
	e.call("GET", "/api/v1/users", adminToken, nil, 200, nil)
}
