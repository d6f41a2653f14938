package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
)

func listRoute(path string) bool {
	for _, s := range []string{"/users", "/organizations", "/members", "/devices", "/invitations", "/reg-keys"} {
		if strings.HasSuffix(path, s) {
			return true
		}
	}
	return false
}

// recorder answers every request with 200 and a body that decodes as any response type: []
// on list routes, nothing on deletes, {} otherwise.
func recorder(n int, w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && listRoute(r.URL.EscapedPath()):
		_, _ = io.WriteString(w, `[]`)
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	default:
		_, _ = io.WriteString(w, `{}`)
	}
}

// TestRoutes checks the method, path and body of every route against the table in package api.
func TestRoutes(t *testing.T) {
	srv := newMemServer(recorder)
	c := newTestClient(t, "http://mem.test/prefix/", WithRetry(0, 0, 0), WithHTTPClient(&http.Client{Transport: srv}))
	host := "h1"
	org := "o2"
	tests := []struct {
		method, path string
		call         func(ctx context.Context) error
		body         string // a field the body must carry
	}{
		{"POST", "/prefix/api/v1/users", func(ctx context.Context) error {
			_, err := c.CreateUser(ctx, api.CreateUserRequest{Username: "alice"})
			return err
		}, "username"},
		{"GET", "/prefix/api/v1/users", func(ctx context.Context) error { _, err := c.ListUsers(ctx); return err }, ""},
		{"GET", "/prefix/api/v1/users/me", func(ctx context.Context) error { _, err := c.Me(ctx); return err }, ""},
		{"POST", "/prefix/api/v1/users/u%2F1/tokens", func(ctx context.Context) error {
			_, err := c.CreateToken(ctx, "u/1", api.CreateTokenRequest{Description: "d"})
			return err
		}, "description"},
		{"POST", "/prefix/api/v1/organizations", func(ctx context.Context) error {
			_, err := c.CreateOrganization(ctx, api.CreateOrganizationRequest{Name: "n"})
			return err
		}, "name"},
		{"GET", "/prefix/api/v1/organizations", func(ctx context.Context) error { _, err := c.ListOrganizations(ctx); return err }, ""},
		{"GET", "/prefix/api/v1/organizations/o%201", func(ctx context.Context) error { _, err := c.GetOrganization(ctx, "o 1"); return err }, ""},
		{"DELETE", "/prefix/api/v1/organizations/o1", func(ctx context.Context) error { return c.DeleteOrganization(ctx, "o1") }, ""},
		{"GET", "/prefix/api/v1/organizations/o1/members", func(ctx context.Context) error { _, err := c.ListMembers(ctx, "o1"); return err }, ""},
		{"DELETE", "/prefix/api/v1/organizations/o1/members/u1", func(ctx context.Context) error { return c.RemoveMember(ctx, "o1", "u1") }, ""},
		{"GET", "/prefix/api/v1/organizations/o1/devices", func(ctx context.Context) error {
			_, err := c.ListDevicesInOrganization(ctx, "o1")
			return err
		}, ""},
		{"POST", "/prefix/api/v1/invitations", func(ctx context.Context) error {
			_, err := c.CreateInvitation(ctx, api.CreateInvitationRequest{OrganizationID: "o1", Username: "bob"})
			return err
		}, "organization_id"},
		{"GET", "/prefix/api/v1/invitations", func(ctx context.Context) error { _, err := c.ListInvitations(ctx); return err }, ""},
		{"GET", "/prefix/api/v1/invitations/i1", func(ctx context.Context) error { _, err := c.GetInvitation(ctx, "i1"); return err }, ""},
		{"POST", "/prefix/api/v1/invitations/i1/accept", func(ctx context.Context) error { _, err := c.AcceptInvitation(ctx, "i1"); return err }, ""},
		{"POST", "/prefix/api/v1/invitations/i1/decline", func(ctx context.Context) error { _, err := c.DeclineInvitation(ctx, "i1"); return err }, ""},
		{"DELETE", "/prefix/api/v1/invitations/i1", func(ctx context.Context) error { return c.RevokeInvitation(ctx, "i1") }, ""},
		{"POST", "/prefix/api/v1/reg-keys", func(ctx context.Context) error {
			_, err := c.CreateRegKey(ctx, api.CreateRegKeyRequest{OrganizationID: "o1", SingleUse: true})
			return err
		}, "single_use"},
		{"GET", "/prefix/api/v1/reg-keys", func(ctx context.Context) error { _, err := c.ListRegKeys(ctx); return err }, ""},
		{"GET", "/prefix/api/v1/reg-keys/k1", func(ctx context.Context) error { _, err := c.GetRegKey(ctx, "k1"); return err }, ""},
		{"DELETE", "/prefix/api/v1/reg-keys/k1", func(ctx context.Context) error { return c.DeleteRegKey(ctx, "k1") }, ""},
		{"POST", "/prefix/api/v1/devices", func(ctx context.Context) error {
			_, err := c.RegisterDevice(ctx, api.RegisterDeviceRequest{PublicKey: "k", Hostname: "h"})
			return err
		}, "public_key"},
		{"GET", "/prefix/api/v1/devices", func(ctx context.Context) error { _, err := c.ListDevices(ctx); return err }, ""},
		{"GET", "/prefix/api/v1/devices/..%2F..%2Fusers", func(ctx context.Context) error { _, err := c.GetDevice(ctx, "../../users"); return err }, ""},
		{"PATCH", "/prefix/api/v1/devices/d1", func(ctx context.Context) error {
			_, err := c.UpdateDevice(ctx, "d1", api.UpdateDeviceRequest{Hostname: &host, OrganizationID: &org})
			return err
		}, "organization_id"},
		{"DELETE", "/prefix/api/v1/devices/d1", func(ctx context.Context) error { return c.DeleteDevice(ctx, "d1") }, ""},
		{"POST", "/prefix/api/v1/devices/d2/signal", func(ctx context.Context) error { return c.Signal(ctx, "d2", []byte("offer")) }, "payload"},
		{"GET", "/prefix/healthz", func(ctx context.Context) error { return c.Health(ctx) }, ""},
		{"GET", "/prefix/readyz", func(ctx context.Context) error { return c.Ready(ctx) }, ""},
	}
	for _, tt := range tests {
		if !assert.NoError(t, tt.call(t.Context()), "%s %s", tt.method, tt.path) {
			continue
		}
		reqs := srv.requests()
		got := reqs[len(reqs)-1]
		assert.Equal(t, tt.method+" "+tt.path, got.method+" "+got.path)
		assert.Equal(t, "Bearer tok", got.header.Get("Authorization"), "%s %s", tt.method, tt.path)
		var body map[string]any
		if len(got.body) > 0 {
			require.NoError(t, json.Unmarshal(got.body, &body), "%s %s: body %q", tt.method, tt.path, got.body)
		}
		if tt.body == "" {
			assert.Nil(t, body, "%s %s: unexpected body", tt.method, tt.path)
			continue
		}
		assert.Contains(t, body, tt.body, "%s %s", tt.method, tt.path)
		assert.Equal(t, "application/json", got.header.Get("Content-Type"), "%s %s", tt.method, tt.path)
	}
}

func TestNewValidation(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "http://", "http://x/?q=1", "://bad"} {
		_, err := New(u)
		assert.Error(t, err, "New(%q)", u)
	}
	_, err := New("http://x", WithToken("a\nb"))
	assert.ErrorContains(t, err, "client: token contains a line break")
	_, err = New("http://x", WithUserAgent("a\rb"))
	assert.ErrorContains(t, err, "client: user agent contains a line break")
	_, err = New("http://x", WithRetry(-1, 0, 0))
	assert.Error(t, err, "negative retries accepted")
	c, err := New("https://x.example/api/v1/")
	require.NoError(t, err)
	assert.Equal(t, "https://x.example", c.BaseURL())
}

func TestSignalTooLarge(t *testing.T) {
	c := newTestClient(t, "http://127.0.0.1:1")
	err := c.Signal(t.Context(), "d", make([]byte, api.MaxSignalPayload+1))
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.ErrorContains(t, err, "client: signal: signal payload is")
}

func TestResponseTooLarge(t *testing.T) {
	srv := newMemServer(func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `[`)
		chunk := strings.Repeat(`{"id":"x"},`, 100_000)
		for written := 0; written <= MaxResponseBody; written += len(chunk) {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	})
	_, err := srv.client(t).ListDevices(t.Context())
	assert.ErrorContains(t, err, "client: list devices: response body over")
}
