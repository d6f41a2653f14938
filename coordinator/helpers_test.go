package coordinator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
	"github.com/nexodus-sdk/nexodus/internal/sealbox"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const adminToken = "test-admin-token-0123456789"

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a real coordinator on a real SQLite file behind an httptest server.
type env struct {
	t      testing.TB
	path   string
	cfg    Config
	store  *sqlite.Store
	coord  *Server
	srv    *httptest.Server
	clock  *fakeClock
	client *http.Client
	seq    atomic.Int64
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("COORD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newEnv(t testing.TB, mod ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "coord.db"), clock: newFakeClock()}
	e.cfg = Config{AdminToken: adminToken, Logger: testLogger(t), Now: e.clock.Now}
	for _, f := range mod {
		f(&e.cfg)
	}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *env) start() {
	e.t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, e.path)
	if err != nil {
		e.t.Fatalf("open store: %v", err)
	}
	e.store = st
	cfg := e.cfg
	cfg.Store = st
	c, err := New(ctx, cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.coord = c
	e.srv = httptest.NewServer(c)
	e.client = e.srv.Client()
}

// stop closes the coordinator, the server and the store (in that order, as a binary would).
func (e *env) stop() {
	if e.coord == nil {
		return
	}
	if err := e.coord.Close(); err != nil {
		e.t.Errorf("Close: %v", err)
	}
	e.srv.Close()
	if err := e.store.Close(); err != nil {
		e.t.Errorf("store Close: %v", err)
	}
	e.coord = nil
}

func (e *env) restart() {
	e.stop()
	e.start()
}

func (e *env) uniq(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, e.seq.Add(1))
}

// do sends a request and returns the status and body. body may be nil, a []byte/string (sent
// raw) or a value encoded as JSON.
func (e *env) do(method, path, token string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	if resp.StatusCode >= 400 {
		var ae api.Error
		if err := json.Unmarshal(b, &ae); err != nil || ae.Code == "" || ae.Message == "" {
			e.t.Errorf("%s %s: status %d with a body that is not an api.Error: %q", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, b
}

// call sends a request, requires want and decodes the body into out (if non-nil).
func (e *env) call(method, path, token string, body any, want int, out any) {
	e.t.Helper()
	st, b := e.do(method, path, token, body)
	if st != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
}

// errCode sends a request and returns its status and error code.
func (e *env) errCode(method, path, token string, body any) (int, string) {
	e.t.Helper()
	st, b := e.do(method, path, token, body)
	var ae api.Error
	_ = json.Unmarshal(b, &ae)
	return st, ae.Code
}

type user struct {
	ID, Name, Token, PersonalOrg string
}

func (e *env) newUser(name string) user {
	e.t.Helper()
	var cu api.CreateUserResponse
	e.call("POST", "/api/v1/users", adminToken, api.CreateUserRequest{Username: name}, 201, &cu)
	var tok api.Token
	e.call("POST", "/api/v1/users/"+cu.User.ID+"/tokens", adminToken, api.CreateTokenRequest{Description: "test"}, 201, &tok)
	return user{ID: cu.User.ID, Name: name, Token: tok.Secret, PersonalOrg: cu.PersonalOrganizationID}
}

func (e *env) newOrg(u user, name, cidr string) api.Organization {
	e.t.Helper()
	var o api.Organization
	e.call("POST", "/api/v1/organizations", u.Token, api.CreateOrganizationRequest{Name: name, IPv4CIDR: cidr}, 201, &o)
	return o
}

func (e *env) newRegKey(u user, orgID string, req api.CreateRegKeyRequest) api.RegKey {
	e.t.Helper()
	req.OrganizationID = orgID
	var k api.RegKey
	e.call("POST", "/api/v1/reg-keys", u.Token, req, 201, &k)
	return k
}

type wgKey struct {
	Priv [32]byte
	Pub  string
}

func newKey(t testing.TB) wgKey {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var w wgKey
	copy(w.Priv[:], k.Bytes())
	w.Pub = base64.StdEncoding.EncodeToString(k.PublicKey().Bytes())
	return w
}

type device struct {
	api.Device
	Key   wgKey
	Token string
}

// register registers a device with the credential and opens its sealed token.
func (e *env) register(cred, orgID, hostname string, key wgKey, want int) device {
	e.t.Helper()
	var resp api.RegisterDeviceResponse
	e.call("POST", "/api/v1/devices", cred, api.RegisterDeviceRequest{
		OrganizationID: orgID, PublicKey: key.Pub, Hostname: hostname,
		Endpoints: []api.Endpoint{{Source: api.EndpointLocal, Address: "192.168.1.10:51820"}},
	}, want, &resp)
	tok, err := sealbox.Open(key.Priv, resp.SealedToken)
	if err != nil {
		e.t.Fatalf("open sealed token: %v", err)
	}
	if !strings.HasPrefix(string(tok), api.DeviceTokenPrefix) {
		e.t.Fatalf("device token %q lacks prefix", tok)
	}
	return device{Device: resp.Device, Key: key, Token: string(tok)}
}

// sse is an open event stream.
type sse struct {
	t      testing.TB
	cancel context.CancelFunc
	body   io.Closer
	ch     chan sseEvent
	done   chan struct{}
	pings  atomic.Int64
}

type sseEvent struct {
	ID    string
	Type  string
	Event api.Event
}

// openStream opens an event stream and requires 200.
func (e *env) openStream(path, token, lastID string) *sse {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		cancel()
		e.t.Fatalf("open stream %s: %v", path, err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		e.t.Fatalf("open stream %s: status %d: %s", path, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		e.t.Errorf("stream content type %q", ct)
	}
	s := &sse{t: e.t, cancel: cancel, body: resp.Body, ch: make(chan sseEvent, 1024), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.ch)
		br := bufio.NewReader(resp.Body)
		var cur sseEvent
		var data string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				if cur.Type != "" {
					if err := json.Unmarshal([]byte(data), &cur.Event); err != nil {
						e.t.Errorf("event data %q: %v", data, err)
					}
					s.ch <- cur
				}
				cur, data = sseEvent{}, ""
			case line == ": ping":
				s.pings.Add(1)
			case strings.HasPrefix(line, ":"):
			case strings.HasPrefix(line, "id: "):
				cur.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.Type = line[7:]
			case strings.HasPrefix(line, "data: "):
				data += line[6:]
			}
		}
	}()
	return s
}

// next waits for the next event.
func (s *sse) next() sseEvent {
	s.t.Helper()
	select {
	case ev, ok := <-s.ch:
		if !ok {
			s.t.Fatal("stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		s.t.Fatal("no event within 10s")
	}
	return sseEvent{}
}

// ended waits for the server to end the stream, failing on any event.
func (s *sse) ended() {
	s.t.Helper()
	for {
		select {
		case ev, ok := <-s.ch:
			if !ok {
				return
			}
			s.t.Logf("event before end: %s %s", ev.ID, ev.Type)
		case <-time.After(10 * time.Second):
			s.t.Fatal("stream did not end within 10s")
		}
	}
}

func (s *sse) close() {
	s.cancel()
	s.body.Close()
	<-s.done
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openWith(priv [32]byte, sealed []byte) (string, error) {
	b, err := sealbox.Open(priv, sealed)
	return string(b), err
}

// doHeader sends a bodyless request with one extra header and returns status and error code.
func (e *env) doHeader(method, path, token, key, value string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(key, value)
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var ae api.Error
	_ = json.NewDecoder(resp.Body).Decode(&ae)
	return resp.StatusCode, ae.Code
}
