package coordinator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
	"github.com/nexodus-sdk/nexodus/internal/sealbox"
	"github.com/nexodus-sdk/nexodus/key"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	adminToken = "test-admin-token-0123456789"
	// baseURL is where the env's client finds the coordinator; the pipe network ignores it.
	baseURL = "http://coordinator"
)

// env is a real coordinator on a real SQLite file, served by an http.Server over an in-memory
// network (pipeNet), so that it works inside a synctest bubble as well as outside. Tests of
// expiry, sweeps, heartbeats and relay renewals run it in a bubble, where time.Now (and so
// Config.Now) is virtual: time.Sleep moves the clock at once, and synctest.Wait lets every
// goroutine settle before the test looks.
type env struct {
	t      testing.TB
	path   string
	cfg    Config
	store  *sqlite.Store
	coord  *Server
	hs     *http.Server
	served chan struct{} // closed when hs.Serve has returned
	client *http.Client
	seq    atomic.Int64
}

func testLogger() *slog.Logger {
	if os.Getenv("COORD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newEnv(t testing.TB, mod ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "coord.db")}
	e.cfg = Config{AdminToken: adminToken, Logger: testLogger()}
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
	require.NoError(e.t, err, "open store")
	cfg := e.cfg
	cfg.Store = st
	c, err := New(ctx, cfg)
	require.NoError(e.t, err, "New")
	e.store, e.coord = st, c
	// The timeouts of examples/coordinator's server, so that tests see what a deployment does.
	e.hs = &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	pn := newPipeNet()
	e.served = make(chan struct{})
	go func() {
		defer close(e.served)
		_ = e.hs.Serve(pn)
	}()
	e.client = &http.Client{Transport: &http.Transport{DialContext: pn.DialContext}}
}

// stop closes the coordinator, the server and the store (in that order, as a binary would).
func (e *env) stop() {
	if e.coord == nil {
		return
	}
	if err := e.coord.Close(); err != nil && !errors.Is(err, net.ErrClosed) { // a test may have closed it
		e.t.Errorf("Close: %v", err)
	}
	assert.NoError(e.t, e.hs.Close(), "http server Close")
	<-e.served
	e.client.CloseIdleConnections()
	assert.NoError(e.t, e.store.Close(), "store Close")
	e.coord = nil
}

func (e *env) restart() {
	e.stop()
	e.start()
}

func (e *env) uniq(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, e.seq.Add(1))
}

// request sends a request with the bearer token (if any), the extra headers and body: nil, a
// []byte/string sent raw, or a value encoded as JSON.
func (e *env) request(ctx context.Context, method, path, token string, body any, header ...string) *http.Response {
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
		require.NoError(e.t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, baseURL+path, rd)
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.client.Do(req)
	require.NoError(e.t, err, "%s %s", method, path)
	return resp
}

// do sends a request and returns the status and body; every error body must be an api.Error.
func (e *env) do(method, path, token string, body any, header ...string) (int, []byte) {
	e.t.Helper()
	resp := e.request(context.Background(), method, path, token, body, header...)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err, "%s %s: read", method, path)
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
	require.Equal(e.t, want, st, "%s %s: %s", method, path, b)
	if out != nil {
		require.NoError(e.t, json.Unmarshal(b, out), "%s %s: decode %q", method, path, b)
	}
}

// errCode sends a request and returns its status and error code.
func (e *env) errCode(method, path, token string, body any, header ...string) (int, string) {
	e.t.Helper()
	st, b := e.do(method, path, token, body, header...)
	var ae api.Error
	_ = json.Unmarshal(b, &ae)
	return st, ae.Code
}

// fails requires a request to fail with status and, when code is set, that error code.
func (e *env) fails(status int, code, method, path, token string, body any) {
	e.t.Helper()
	st, c := e.errCode(method, path, token, body)
	assert.Equal(e.t, status, st, "%s %s: status", method, path)
	if code != "" {
		assert.Equal(e.t, code, c, "%s %s: code", method, path)
	}
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

// invite has owner invite u into orgID with role (member when empty) and u accept.
func (e *env) invite(owner, u user, orgID, role string) api.Invitation {
	e.t.Helper()
	var inv api.Invitation
	e.call("POST", "/api/v1/invitations", owner.Token, api.CreateInvitationRequest{OrganizationID: orgID, Username: u.Name, Role: role}, 201, &inv)
	e.call("POST", "/api/v1/invitations/"+inv.ID+"/accept", u.Token, nil, 200, &inv)
	return inv
}

type wgKey struct {
	Priv key.Key
	Pub  string
}

func newKey(t testing.TB) wgKey {
	t.Helper()
	k, err := key.Generate()
	require.NoError(t, err)
	return wgKey{Priv: k, Pub: k.Public().String()}
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
	tok := openWith(e.t, key.Priv, resp.SealedToken)
	require.True(e.t, strings.HasPrefix(tok, api.DeviceTokenPrefix), "device token %q lacks prefix", tok)
	return device{Device: resp.Device, Key: key, Token: tok}
}

// openWith opens a sealed token that must open with priv.
func openWith(t testing.TB, priv key.Key, sealed []byte) string {
	t.Helper()
	b, err := sealbox.Open(priv, sealed)
	require.NoError(t, err, "open sealed token")
	return string(b)
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
	var header []string
	if lastID != "" {
		header = []string{"Last-Event-ID", lastID}
	}
	resp := e.request(ctx, "GET", path, token, nil, header...)
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		e.t.Fatalf("open stream %s: status %d: %s", path, resp.StatusCode, b)
	}
	assert.Equal(e.t, "text/event-stream", resp.Header.Get("Content-Type"))
	s := &sse{t: e.t, cancel: cancel, body: resp.Body, ch: make(chan sseEvent, 1024), done: make(chan struct{})}
	go s.read(resp.Body)
	return s
}

// read parses the stream into s.ch until it ends.
func (s *sse) read(body io.Reader) {
	defer close(s.done)
	defer close(s.ch)
	br := bufio.NewReader(body)
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
					s.t.Errorf("event data %q: %v", data, err)
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

// nextOf skips events of other types until one of typ.
func (s *sse) nextOf(typ string) sseEvent {
	s.t.Helper()
	for {
		if ev := s.next(); ev.Type == typ {
			return ev
		}
	}
}

// ended waits for the server to end the stream, logging any event before the end.
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

// endedWith requires the stream's next event to be api.EventClosed with reason, and the
// stream to end after it.
func (s *sse) endedWith(reason api.Reason) {
	s.t.Helper()
	ev := s.nextOf(api.EventClosed)
	assert.Equal(s.t, reason, ev.Event.Reason, "reason of the closed event")
	assert.Empty(s.t, ev.ID, "a closed event has no revision")
	s.ended()
}

// quiet requires that no event is waiting.
func (s *sse) quiet(what string) {
	s.t.Helper()
	select {
	case ev := <-s.ch:
		s.t.Errorf("%s: got %s", what, ev.Type)
	default:
	}
}

func (s *sse) close() {
	s.cancel()
	s.body.Close()
	<-s.done
}
