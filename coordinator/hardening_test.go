package coordinator

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
)

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
		if w.Code >= 500 {
			t.Errorf("GET %s with a canceled context: %d, want no 5xx", path, w.Code)
		}
	}
	if errs := rec.atLeast(slog.LevelError); len(errs) > 0 {
		t.Errorf("error-level logs for clients that went away: %q", errs)
	}
}

// TestStreamOutlivesReadTimeout: an http.Server's ReadTimeout bounds reading requests and
// does not end event streams, which is what lets examples/coordinator set one.
func TestStreamOutlivesReadTimeout(t *testing.T) {
	const readTimeout = 100 * time.Millisecond
	e := newEnv(t, func(c *Config) { c.Heartbeat = 10 * time.Millisecond })
	alice := e.newUser("alice")
	srv := httptest.NewUnstartedServer(e.coord)
	srv.Config.ReadTimeout = readTimeout
	srv.Config.ReadHeaderTimeout = readTimeout
	srv.Start()
	defer srv.Close()
	saved := e.srv
	e.srv = srv
	defer func() { e.srv = saved }()

	s := e.openStream("/api/v1/organizations/"+alice.PersonalOrg+"/events", alice.Token, "")
	defer s.close()
	s.next()
	// Heartbeats come at most every 10ms, so 30 of them span three read timeouts.
	eventually(t, "heartbeats past the read timeout", func() bool {
		select {
		case <-s.done:
			t.Fatal("the stream ended")
		default:
		}
		return s.pings.Load() >= 30
	})
	e.register(alice.Token, alice.PersonalOrg, "late", newKey(t), 201)
	if ev := s.next(); ev.Type != api.EventDeviceAdded {
		t.Fatalf("got %s, want %s", ev.Type, api.EventDeviceAdded)
	}
	// Ordinary requests on the same server still work.
	req, _ := http.NewRequest("GET", srv.URL+"/healthz", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestOrganizationNames: only personal organizations' names are unique. Nobody can take a
// future user's name away, and a 409 never tells who else uses a name; a username itself is
// kept for that user's personal organization.
func TestOrganizationNames(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	carol := e.newUser("carol")
	var zed api.Organization
	e.call("POST", "/api/v1/organizations", carol.Token, api.CreateOrganizationRequest{Name: "zed"}, 201, &zed)
	// Another user may use the same name: the answer reveals nothing about carol's.
	var alices api.Organization
	e.call("POST", "/api/v1/organizations", alice.Token, api.CreateOrganizationRequest{Name: "zed"}, 201, &alices)
	if alices.ID == zed.ID {
		t.Fatal("same organization twice")
	}
	// The admin can still create user zed, with a personal organization named zed.
	var cu api.CreateUserResponse
	e.call("POST", "/api/v1/users", adminToken, api.CreateUserRequest{Username: "zed"}, 201, &cu)
	if cu.PersonalOrganizationID == zed.ID || cu.PersonalOrganizationID == alices.ID {
		t.Fatal("user zed got an existing organization")
	}
	// A username is not available as a name for other organizations.
	for _, name := range []string{"alice", "zed"} {
		if st, code := e.errCode("POST", "/api/v1/organizations", carol.Token, api.CreateOrganizationRequest{Name: name}); st != 409 || code != api.CodeConflict {
			t.Errorf("organization named after user %s: %d %s", name, st, code)
		}
	}
	if st, _ := e.errCode("POST", "/api/v1/users", adminToken, api.CreateUserRequest{Username: "zed"}); st != 409 {
		t.Errorf("second user zed: %d", st)
	}
	// Each sees their own.
	var orgs []api.Organization
	e.call("GET", "/api/v1/organizations", carol.Token, nil, 200, &orgs)
	if len(orgs) != 2 {
		t.Errorf("carol's organizations %+v", orgs)
	}
}
