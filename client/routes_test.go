package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/nexodus-sdk/nexodus/api"
)

func apiCreateUser(name string) api.CreateUserRequest { return api.CreateUserRequest{Username: name} }
func apiUpdateHostname(h string) api.UpdateDeviceRequest {
	return api.UpdateDeviceRequest{Hostname: &h}
}
func apiRegister() api.RegisterDeviceRequest {
	return api.RegisterDeviceRequest{PublicKey: "k", Hostname: "h"}
}

func listRoute(path string) bool {
	for _, s := range []string{"/users", "/organizations", "/members", "/devices", "/invitations", "/reg-keys"} {
		if strings.HasSuffix(path, s) {
			return true
		}
	}
	return false
}

type recorded struct {
	method, path, auth, contentType string
	body                            map[string]any
}

// recorder answers every request with 200 and a body that decodes as any response type
// ("[]" for lists is not needed: callers ignore the body), and records what it saw.
func recorder(t *testing.T) (*httptest.Server, func() recorded) {
	t.Helper()
	var mu sync.Mutex
	var last recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := recorded{method: r.Method, path: r.URL.EscapedPath(), auth: r.Header.Get("Authorization"),
			contentType: r.Header.Get("Content-Type")}
		data, _ := io.ReadAll(r.Body)
		if len(data) > 0 {
			if err := json.Unmarshal(data, &rec.body); err != nil {
				t.Errorf("%s %s: body %q: %v", r.Method, r.URL, data, err)
			}
		}
		mu.Lock()
		last = rec
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet && listRoute(r.URL.EscapedPath()) {
			_, _ = io.WriteString(w, `[]`)
			return
		}
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		_, _ = io.WriteString(w, `{}`)
	}))
	t.Cleanup(srv.Close)
	return srv, func() recorded {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
}

// TestRoutes checks the method, path and body of every route against the table in package api.
func TestRoutes(t *testing.T) {
	srv, last := recorder(t)
	c := newTestClient(t, srv.URL+"/prefix/", WithRetry(0, 0, 0))
	host := "h1"
	org := "o2"
	tests := []struct {
		method, path string
		call         func(ctx context.Context) error
		body         string // a field the body must carry
	}{
		{"POST", "/prefix/api/v1/users", func(ctx context.Context) error { _, err := c.CreateUser(ctx, apiCreateUser("alice")); return err }, "username"},
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
		{"POST", "/prefix/api/v1/devices", func(ctx context.Context) error { _, err := c.RegisterDevice(ctx, apiRegister()); return err }, "public_key"},
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
		if err := tt.call(t.Context()); err != nil {
			t.Errorf("%s %s: %v", tt.method, tt.path, err)
			continue
		}
		got := last()
		if got.method != tt.method || got.path != tt.path {
			t.Errorf("sent %s %s, want %s %s", got.method, got.path, tt.method, tt.path)
		}
		if got.auth != "Bearer tok" {
			t.Errorf("%s %s: Authorization %q", tt.method, tt.path, got.auth)
		}
		if tt.body != "" {
			if _, ok := got.body[tt.body]; !ok || got.contentType != "application/json" {
				t.Errorf("%s %s: body %v (%s) lacks %q", tt.method, tt.path, got.body, got.contentType, tt.body)
			}
		} else if got.body != nil {
			t.Errorf("%s %s: unexpected body %v", tt.method, tt.path, got.body)
		}
	}
}

func TestNewValidation(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "http://", "http://x/?q=1", "://bad"} {
		if _, err := New(u); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
	if _, err := New("http://x", WithToken("a\nb")); err == nil {
		t.Error("token with a newline accepted")
	}
	if _, err := New("http://x", WithRetry(-1, 0, 0)); err == nil {
		t.Error("negative retries accepted")
	}
	c, err := New("https://x.example/api/v1/")
	if err != nil || c.BaseURL() != "https://x.example" {
		t.Errorf("BaseURL = %q, %v", c.BaseURL(), err)
	}
}

func TestSignalTooLarge(t *testing.T) {
	c := newTestClient(t, "http://127.0.0.1:1")
	err := c.Signal(t.Context(), "d", make([]byte, api.MaxSignalPayload+1))
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("err = %v, want ErrTooLarge", err)
	}
}

func TestResponseTooLarge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `[`)
		chunk := strings.Repeat(`{"id":"x"},`, 1000)
		for written := 0; written <= MaxResponseBody; written += len(chunk) {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL)
	if _, err := c.ListDevices(t.Context()); err == nil || !strings.Contains(err.Error(), "over") {
		t.Errorf("err = %v, want a size error", err)
	}
}
