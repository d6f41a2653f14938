package coordinator

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store/postgres"
	"github.com/nexodus-sdk/nexodus/coordinator/store/postgres/pgtest"
)

// tcpProxy forwards connections to a PostgreSQL server until down, which refuses new ones and
// cuts the open ones, as a stopped server would; up listens again on the same address.
type tcpProxy struct {
	target, addr string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]struct{}
	wg           sync.WaitGroup
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.pipe(c) })
		}
	})
}

func (p *tcpProxy) pipe(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // went down meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, dir := range [][2]net.Conn{{c, up}, {up, c}} {
		wg.Go(func() {
			_, _ = io.Copy(dir[0], dir[1])
			dir[0].Close()
			dir[1].Close()
		})
	}
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// down stops accepting and cuts every connection.
func (p *tcpProxy) down() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *tcpProxy) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	require.NoError(t, err, "listen again on %s", p.addr)
	p.serve(ln)
}

// While PostgreSQL is away requests answer 503 at once (no crash, no hang), /readyz says why,
// and everything works again once it is back — with no restart.
func TestDatabaseOutage(t *testing.T) {
	ctx := context.Background()
	u, err := url.Parse(pgtest.Database(t))
	require.NoError(t, err)
	proxy := startProxy(t, u.Host)
	u.Host = proxy.addr
	st, err := postgres.Open(ctx, u.String())
	require.NoError(t, err)
	defer st.Close()
	srv, err := New(ctx, Config{Store: st, AdminToken: adminToken, Logger: testLogger()})
	require.NoError(t, err)
	defer srv.Close()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	hc := &http.Client{Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	send := func(method, path, token string, body any) (int, api.Error) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			require.NoError(t, err)
			rd = strings.NewReader(string(b))
		}
		req, err := http.NewRequest(method, hs.URL+path, rd)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		require.NoError(t, err, "%s %s: the coordinator must answer", method, path)
		defer resp.Body.Close()
		var e api.Error
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e
	}

	var cu api.CreateUserResponse
	req, _ := http.NewRequest("POST", hs.URL+"/api/v1/users", strings.NewReader(`{"username":"alice"}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&cu))
	resp.Body.Close()
	code, _ := send("GET", "/readyz", "", nil)
	require.Equal(t, http.StatusOK, code)

	proxy.down()
	code, body := send("GET", "/readyz", "", nil)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body.Message, "the database is unavailable", "/readyz says why")
	code, body = send("GET", "/api/v1/users", adminToken, nil)
	assert.Equal(t, http.StatusServiceUnavailable, code, "a read")
	assert.Equal(t, api.CodeUnavailable, body.Code)
	code, _ = send("POST", "/api/v1/users", adminToken, api.CreateUserRequest{Username: "bob"})
	assert.Equal(t, http.StatusServiceUnavailable, code, "a write")

	proxy.up(t)
	require.Eventually(t, func() bool {
		code, _ := send("GET", "/readyz", "", nil)
		return code == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "ready again once the database is back")
	code, _ = send("POST", "/api/v1/users", adminToken, api.CreateUserRequest{Username: "bob"})
	assert.Equal(t, http.StatusCreated, code, "writes work again")
	code, _ = send("GET", "/api/v1/users", adminToken, nil)
	assert.Equal(t, http.StatusOK, code)
}
